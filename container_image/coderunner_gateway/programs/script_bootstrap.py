def _coderunner_boot():
    """Run the user's script with stdout/stderr on one tagged channel, and report an uncaught
    exception and the exit code on it.

    Runs in the user's interpreter before the script: one function so it leaves no names in the
    script's namespace; hence its length (over ~50 lines)."""
    import _thread
    import io
    import os
    import sys

    fd = int(sys.argv[1])
    path, shown, cwd = sys.argv[2], sys.argv[3], sys.argv[4]  # the temp file; the name tracebacks show; "" or a dir
    sys.argv = sys.argv[5:]
    os.set_inheritable(fd, False)
    lock = _thread.allocate_lock()

    def send(tag, data):  # records of up to 1 MiB, each header and its data in one writev, not copied
        view = memoryview(data)
        if not view.c_contiguous or view.format != "B":
            view = memoryview(view.tobytes())
        with lock:
            for i in range(0, len(view), 1 << 20):
                part = view[i : i + (1 << 20)]
                head = tag + len(part).to_bytes(4, "big")
                n = os.writev(fd, [head, part])
                if n < 5:
                    head = head[n:]
                    while head:
                        head = head[os.write(fd, head) :]
                    n = 5
                part = part[n - 5 :]
                while part:
                    part = part[os.write(fd, part) :]

    class Channel(io.RawIOBase):
        def __init__(self, tag, real):
            self._tag, self._real = tag, real

        def writable(self):
            return True

        def fileno(self):
            return self._real

        def isatty(self):
            return False

        def write(self, b):  # sent before returning: b need not be copied
            send(self._tag, b)
            return memoryview(b).nbytes

    def show(*args, **kwargs):  # plt.show() on a backend without a screen: the figures become display records
        import base64
        import json

        plt = sys.modules["matplotlib.pyplot"]
        try:
            interactive = plt._get_backend_mod().FigureCanvas.required_interactive_framework is not None
        except Exception:
            interactive = False
        if interactive:
            return real_show[0](*args, **kwargs)
        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            send(
                b"\x05",
                json.dumps(
                    {"data": {"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": repr(fig)}}
                ).encode(),
            )
        plt.close("all")

    real_show = [None]

    class PyplotHook:  # patches matplotlib.pyplot.show once pyplot is imported; costs nothing until then
        def find_spec(self, name, path=None, target=None):
            if name != "matplotlib.pyplot":
                return None
            sys.meta_path.remove(self)
            import importlib.util

            spec = importlib.util.find_spec(name)
            loader = spec and spec.loader
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            load = loader.exec_module

            def exec_module(module):
                load(module)
                real_show[0] = module.show
                module.show = show

            loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, PyplotHook())
    # typeshed marks sys.__stdout__/__stderr__ Final; they are plain attributes, replaced on purpose
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(  # type: ignore[misc]
        Channel(b"\x01", 1), encoding="utf-8", write_through=True
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(  # type: ignore[misc]
        Channel(b"\x02", 2), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    if cwd:  # run as `cd DIR && python NAME` would: NAME is __file__, its folder is on sys.path
        os.chdir(cwd)
        sys.path[0] = os.path.join(cwd, os.path.dirname(shown))
    else:
        sys.path[0] = os.getcwd()
    import __main__

    g = __main__.__dict__
    g.pop("_coderunner_boot", None)
    g["__file__"] = shown if cwd else path
    g["__cached__"] = None
    with open(path, "rb") as f:
        source = f.read()
    try:
        exec(compile(source, shown, "exec", dont_inherit=True), g)
    except SystemExit as exc:
        code = exc.code
        if code is not None and not isinstance(code, int):
            sys.stderr.write(str(code) + "\n")
            sys.stderr.flush()
            exc = SystemExit(1)
        send(b"\x04", str(int(code) if isinstance(code, int) else 0 if code is None else 1).encode())
        raise exc
    except BaseException as exc:
        import json
        import linecache
        import traceback

        text = source.decode("utf-8", "replace")
        linecache.cache[shown] = (len(text), None, text.splitlines(True), shown)
        tb = exc.__traceback__
        tb = tb.tb_next if tb is not None else None
        lines = traceback.format_exception(type(exc), exc, tb)
        sys.stderr.write("".join(lines))
        sys.stderr.flush()
        send(b"\x03", json.dumps({"ename": type(exc).__name__, "evalue": str(exc), "traceback": lines}).encode())
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
        send(b"\x04", str(code).encode())
        raise SystemExit(code) from None
    send(b"\x04", b"0")


_coderunner_boot()
