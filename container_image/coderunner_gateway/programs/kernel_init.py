def _coderunner_init():
    """Set up a new kernel's output: no colours or output history, the output cap per execution,
    and the counts of what was sent in every reply's metadata.

    Runs in the user's kernel: one function, called then deleted, so it leaves no names in
    the user's namespace; hence its length (over ~50 lines)."""
    import contextlib
    import sys
    import warnings

    from IPython import get_ipython

    # SystemExit is reported as an exit code; IPython's hint is noise here
    warnings.filterwarnings("ignore", message="To exit: use")
    ip = get_ipython()
    try:
        ip.run_line_magic("colors", "nocolor")
    except Exception:
        pass
    if hasattr(ip, "_tee"):
        # IPython >= 9 copies every byte of output into its history: a
        # flood of output would grow the kernel without bound
        ip._tee = lambda channel: contextlib.nullcontext()
    out, err = sys.stdout, sys.stderr
    last = [None]

    # Output cap for aggregated requests (metadata "coderunner_output_limit"):
    # PUB/SUB has no backpressure, so a flood must be cut here, not queued.
    # What was sent per stream ("sent_*") lets the gateway count what PUB/SUB lost on the way.
    cap = {"msg": None, "limit": None, "used": 0, "stdout": 0, "stderr": 0, "sent_stdout": 0, "sent_stderr": 0}

    def allowance(text, name):
        parent = ip.kernel.get_parent("shell") or {}
        msg_id = parent.get("header", {}).get("msg_id")
        if msg_id != cap["msg"]:
            cap.update(
                msg=msg_id,
                limit=(parent.get("metadata") or {}).get("coderunner_output_limit"),
                used=0,
                stdout=0,
                stderr=0,
                sent_stdout=0,
                sent_stderr=0,
            )
        size = len(text.encode("utf-8", "surrogatepass"))
        room = size if cap["limit"] is None else cap["limit"] - cap["used"]
        if size <= room:
            cap["used"] += size
            cap["sent_" + name] += size
            return text
        head = text.encode("utf-8", "surrogatepass")[: max(room, 0)].decode("utf-8", "ignore")
        kept = len(head.encode("utf-8", "surrogatepass"))
        cap["used"] += kept
        cap[name] += size - kept
        cap["sent_" + name] += kept
        return head

    def counts(*keys):
        # the counters belong to the execution that last wrote: one that wrote nothing has 0
        parent = ip.kernel.get_parent("shell") or {}
        if parent.get("header", {}).get("msg_id") != cap["msg"]:
            return {"stdout": 0, "stderr": 0}
        return {"stdout": cap[keys[0]], "stderr": cap[keys[1]]}

    mod = type(sys)("__coderunner__")
    mod.dropped = lambda: counts("stdout", "stderr")
    mod.sent = lambda: counts("sent_stdout", "sent_stderr")

    # ... reported in every execute_reply's metadata (cheaper than user_expressions)
    finish = ip.kernel.finish_metadata

    def finish_metadata(parent, metadata, reply_content):
        metadata = finish(parent, metadata, reply_content)
        metadata["coderunner"] = {"sent": mod.sent(), "dropped": mod.dropped()}
        return metadata

    ip.kernel.finish_metadata = finish_metadata
    sys.modules["__coderunner__"] = mod

    # ipykernel buffers each stream apart; flushing the other stream when
    # the writer switches keeps stdout and stderr in the order written.
    # A subclass, not an instance attribute: IPython re-wraps `write` per cell.
    def ordered(stream, other):
        base = type(stream)

        # ipykernel sends all that was written in a flush interval as ONE message, which
        # the gateway must then hold whole (300 MB for a fast loop): flush every 128 KiB, as
        # ZeroMQ may queue up to 1000 messages. The flush waits for the kernel's I/O thread,
        # so a flood slows the code that prints.
        pending = [0]

        class Ordered(base):
            def write(self, text):
                if last[0] is other:
                    other.flush()
                last[0] = self
                if not isinstance(text, str):
                    return base.write(self, text)
                text = allowance(text, self.name)
                if not text:
                    return 0
                written = 0
                for i in range(0, len(text), 65536):
                    piece = text[i : i + 65536]
                    written += base.write(self, piece) or 0
                    pending[0] += len(piece)
                    if pending[0] >= 1 << 17:
                        pending[0] = 0
                        self.flush()
                return written

        Ordered.__name__ = base.__name__
        stream.__class__ = Ordered
        if hasattr(stream, "flush_interval"):
            stream.flush_interval = 0.005  # first byte fast; bursts still batch

    ordered(out, err)
    ordered(err, out)

    # ipykernel echoes each cell's code on IOPub (execute_input) for notebook frontends; the
    # gateway is the kernel's only client and ignores it, so it is not sent (a 10 MB cell came
    # back whole, to be read and parsed for nothing)
    ip.kernel._publish_execute_input = lambda code, parent, execution_count: None

    # Per execution, ipykernel made 5 debug log records its handler then dropped (the logger is
    # at DEBUG, its handler at WARNING) and read run_cell_async's signature again: ~0.5 ms of
    # a print(1)'s ~6 ms. The logger now drops what no handler would take; the signature is
    # read once per method (it cannot change).
    import logging

    log = ip.kernel.log
    taken = min((h.level for h in log.handlers), default=logging.NOTSET)
    if taken > logging.DEBUG >= log.level:
        log.setLevel(taken)
    import ipykernel.ipkernel

    accepts = getattr(ipykernel.ipkernel, "_accepts_parameters", None)
    if accepts is not None:
        known = {}

        def accepts_once(meth, names, *rest, **kw):
            if rest or kw:  # a later ipykernel's call: passed on as it is
                return accepts(meth, names, *rest, **kw)
            key = (getattr(meth, "__func__", meth), tuple(names))
            if key not in known:
                known[key] = accepts(meth, names)
            return known[key]

        ipykernel.ipkernel._accepts_parameters = accepts_once


_coderunner_init()
del _coderunner_init
