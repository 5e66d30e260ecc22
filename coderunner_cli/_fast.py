"""The `coderunner` entry point: a plain `exec` runs without importing typer, rich or click.

`coderunner exec` runs in shell loops, so its start-up is paid on every call. This parses
exactly the common forms

    coderunner exec [--name N] [-c CODE] [-s/--session S] [--timeout T] [-l/--lang L] [FILE|- [ARGS...]]

(options before FILE, as `--opt value` or `--opt=value`) and calls commands/exec_.py as the
Typer command does. Anything else (other commands, --outputs, `--`, attached short values, a bad
--timeout, a missing value) goes to the full CLI in app.py, so its messages and exit codes are the
CLI's own; the top-level help (no arguments, --help, -h) is the full CLI's too, kept (_help.py).

The commonest exec of all, a script run (-c CODE or a .py/.sh/.bash FILE, no --session), goes
further (:func:`lean`): it finds the sandbox, sends its one request over a raw socket (_http.py) and
writes the events as exec_.run does, importing nothing but C modules of the standard library after
site.py. Whatever it is not sure of (a #! line to read, a file it cannot read, a name or state it
does not recognise, another URL scheme) it leaves, before doing anything, to exec_.run, which says
it in the CLI's words; errors on the way are said by client.py's own functions.

One module over ~300 lines on purpose: every module the fast path imports is start-up paid on
each `coderunner exec`, so its parsing, discovery, request and event writing stay in this one file.
"""

from __future__ import annotations

import sys

# option -> the exec_.run parameter it sets (--timeout's value is a float)
_OPTIONS = {
    "--name": "name",
    "-c": "code",
    "--code": "code",
    "-s": "session",
    "--session": "session",
    "--timeout": "timeout",
    "-l": "lang",
    "--lang": "lang",
}


def parse(argv: list[str]) -> dict | None:
    """exec_.run's arguments for ``argv`` (after the program name), or None: the full CLI decides."""
    if not argv or argv[0] != "exec":
        return None
    opts: dict = {"name": None, "code": None, "session": None, "timeout": None, "lang": None}
    i, n = 1, len(argv)
    value: str | float
    while i < n:
        word = argv[i]
        if word == "-" or not word.startswith("-"):
            break  # FILE: every word after it is the script's (Typer: allow_interspersed_args=False)
        key, eq, value = word.partition("=")
        if eq and key.startswith("--") and key in _OPTIONS:
            i += 1
        elif word in _OPTIONS and i + 1 < n:
            key, value = word, argv[i + 1]
            i += 2
        else:
            return None  # --help, --outputs, --, -cCODE, unknown options, a missing value
        if _OPTIONS[key] == "timeout":
            try:
                value = float(value)
            except ValueError:
                return None
        opts[_OPTIONS[key]] = value
    opts["target"] = argv[i] if i < n else None
    opts["args"] = argv[i + 1 :]
    return opts


EXTENSIONS = {".py": "python", ".sh": "bash", ".bash": "bash"}  # as commands/exec_.py's
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _plain_name(name: str) -> bool:
    """paths.SANDBOX_NAME's test without ``re`` (a name it refuses goes to paths, which says why)."""
    return 0 < len(name) <= 40 and name[0] not in "_.-" and _NAME_CHARS.issuperset(name)


def state_home() -> str:
    """paths.home() without $CODERUNNER_HOME: platformdirs' user_state_dir("coderunner"), which costs
    more to import than the rest of an exec's start-up (pathlib, tempfile, shutil, random). Said here
    for Linux where every platformdirs version agrees (an absolute $HOME, an absolute or empty
    $XDG_STATE_HOME, not Android); anywhere else platformdirs says it."""
    import os

    env = os.environ
    home, xdg = env.get("HOME", ""), env.get("XDG_STATE_HOME", "")
    plain = sys.platform == "linux" and "ANDROID_DATA" not in env and home.startswith("/")
    if plain and (not xdg or (xdg.startswith("/") and xdg == xdg.strip())):
        return os.path.join(xdg or os.path.expanduser("~/.local/state"), "coderunner")
    from platformdirs import user_state_dir

    return user_state_dir("coderunner", appauthor=False)


def _gateway(name: str | None) -> tuple[str, str | None, bool] | None:
    """client.discover()'s URL, token and whether they came from `coderunner up`'s state, read
    without pathlib or dataclasses; None when anything is off (the full client says what)."""
    import os

    name = name or os.environ.get("CODERUNNER_SANDBOX") or "default"
    if not _plain_name(name):
        return None
    url = os.environ.get("CODERUNNER_URL")
    if url:
        return url.rstrip("/"), os.environ.get("CODERUNNER_TOKEN"), False
    from ._http import loads

    home = os.environ.get("CODERUNNER_HOME") or state_home()
    folder = home if name == "default" else os.path.join(home, "sandboxes", name)
    try:
        with open(os.path.join(folder, "state.json"), "rb") as f:
            state = loads(f.read())
    except (OSError, ValueError):
        return None
    url = state.get("url") if isinstance(state, dict) else None
    if not isinstance(url, str) or not all(isinstance(state.get(k), str) for k in ("runtime", "name")):
        return None
    token = os.environ.get("CODERUNNER_TOKEN")
    if not token:
        try:
            with open(os.path.join(folder, "secrets", "token"), encoding="utf-8") as f:
                token = f.read().strip() or None
        except FileNotFoundError:
            token = None
        except (OSError, ValueError):
            return None
    return url, token, True


def lean(opts: dict) -> int | None:
    """A script run (no --session) as commands/exec_.run does it, on a raw HTTP request (:mod:`._http`):
    the exit code, or None before anything happened when the case is not a plain one (exec_.run then
    runs it, and says any error in its own words)."""
    from . import _http

    script = _script(opts)
    if script is None:
        return None
    code, target, args, language, filename = script
    found = _gateway(opts["name"])
    if found is None:
        return None
    url, token, from_state = found
    where = _http.address(url)
    if where is None:
        return None
    # commands/exec_.run from here on: stdin, the request (client._execute_body), the events
    body = _body(code, language, args, opts["timeout"], filename)
    headers = {"Accept": "application/x-ndjson", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return _post(where, _http.dumps(body).encode(), headers, target, url, from_state)


def _script(opts: dict) -> tuple[str, str | None, list[str], str, str | None] | None:
    """The script run's code, FILE, arguments, language and filename, or None when lean leaves it
    to exec_.run (a session, another language, a bad timeout, stdin or a #! line, an unreadable FILE)."""
    import os

    code, target, args, lang, timeout = opts["code"], opts["target"], opts["args"], opts["lang"], opts["timeout"]
    if opts["session"] is not None or lang not in (None, "python", "bash"):
        return None
    if timeout is not None and not timeout > 0:
        return None
    if code is not None and target is not None:
        args, target = [target, *args], None
    filename = None
    if code is not None:
        language = lang or "python"
    elif target is None or target == "-":
        return None
    else:
        filename = os.path.basename(target)
        language = lang or EXTENSIONS.get(os.path.splitext(filename)[1].lower())
        if language is None:
            return None  # a #! line, or no language: exec_ decides
        try:
            with open(target, encoding="utf-8") as f:
                code = f.read()
        except (OSError, ValueError):
            return None
    return code, target, args, language, filename


def _body(code: str, language: str, args: list[str], timeout: float | None, filename: str | None) -> dict:
    """client._execute_body's request, with piped stdin read here (as text, or base64 when not UTF-8)."""
    piped = None if sys.stdin.isatty() else sys.stdin.buffer.read()
    stdin: str | None = None
    body: dict = {"code": code}
    if piped is not None:
        try:
            stdin = piped.decode("utf-8")
        except UnicodeDecodeError:
            import binascii  # base64.b64encode without base64's imports

            body["stdin_b64"] = binascii.b2a_base64(piped, newline=False).decode("ascii")
    for key, value in (
        ("timeout", timeout),
        ("language", language),
        ("argv", args or None),
        ("stdin", stdin),
        ("filename", filename),
    ):
        if value is not None:
            body[key] = value
    return body


def _post(where, payload: bytes, headers: dict, target: str | None, url: str, from_state: bool) -> int:
    """POST /v1/execute (one retry on a fresh connection, as CodeRunner) and write its events: the
    exit code; 130 on Ctrl-C, which closes the stream and so kills the script."""
    from . import _http

    sock = None
    try:
        for attempt in (0, 1):
            try:
                sock, resp = _http.request(where, "POST", "/v1/execute", payload, headers)
                break
            except (BrokenPipeError, ConnectionResetError) as exc:
                if attempt:  # as CodeRunner: one retry on a fresh connection
                    raise _transport(url, from_state, exc) from exc
            except OSError as exc:
                raise _transport(url, from_state, exc) from exc
        if resp.status >= 400:
            from .client import _Base

            try:
                raw = resp.read()
            except OSError as exc:
                raise _transport(url, from_state, exc) from exc
            raise _Base._error(resp.status, raw)
        return _events(resp, target, url, from_state)
    except KeyboardInterrupt:
        if sock is not None:
            sock.close()  # closing the stream kills a script
        print("coderunner: interrupted", file=sys.stderr)
        return 130
    finally:
        if sock is not None:
            sock.close()


def _events(resp, target: str | None, url: str, from_state: bool) -> int:
    from ._http import loads

    out, err = sys.stdout.buffer, sys.stderr.buffer
    exit_code = 1
    script_error = None
    saver = None
    lines = resp.lines()
    while True:
        try:
            line = next(lines, None)
        except OSError as exc:
            raise _transport(url, from_state, exc) from exc
        if line is None:
            return exit_code
        if not line.strip():
            continue
        event = loads(line)
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            stream = out if kind == "stdout" else err
            if "b64" in event:
                import binascii  # base64.b64decode

                stream.write(binascii.a2b_base64(event["b64"]))
            else:
                stream.write(event.get("text", "").encode("utf-8", "surrogatepass"))
            stream.flush()
        elif kind in ("display", "result"):
            if saver is None:
                from .commands.exec_ import _OutputSaver

                saver = _OutputSaver(None)
            saver.save(event)
        elif kind == "error":
            script_error = event
        elif kind == "done":
            exit_code = int(event.get("exit_code", 1))
            if event.get("message") and event.get("status") != "ok":
                print(f"coderunner: {event['message']}", file=sys.stderr)
            if script_error is not None and target not in (None, "-"):
                from .commands._sync import missing_sibling_hint

                if hint := missing_sibling_hint(target, script_error):
                    print(hint, file=sys.stderr)


def _transport(url: str, from_state: bool, exc: BaseException):
    """The client's words for a failed connection (client._Base._transport)."""
    from .client import CodeRunner

    cr = CodeRunner.__new__(CodeRunner)
    cr.url, cr.token, cr.timeout, cr._from_state = url, None, None, from_state
    return cr._transport(exc)


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C while modules load: as the command's own Ctrl-C
        _interrupted()
    except RuntimeError as exc:  # ... also when it landed in a class body's __set_name__
        if isinstance(exc.__cause__, KeyboardInterrupt):  # (ipaddress, 3.11) which wraps it
            _interrupted()
        raise


def _interrupted() -> None:
    print("coderunner: interrupted", file=sys.stderr)
    sys.exit(130)


def _main() -> None:
    if sys.argv[1:] in ([], ["--help"], ["-h"]):  # the top-level help, kept from the Typer CLI's (_help.py)
        from . import _help

        return _help.main(sys.argv[1:])
    opts = parse(sys.argv[1:])
    if opts is None:
        from .app import main as full

        return full()
    import os

    from .errors import CoderunnerError

    if opts["name"] is None:  # Typer's envvar: an empty one is unset
        opts["name"] = os.environ.get("CODERUNNER_SANDBOX") or None
    # what app.py's _user_errors and main() do around the exec command
    try:
        code = lean(opts)
        if code is None:
            from . import paths
            from .commands.exec_ import run

            paths.use_sandbox(opts["name"])
            code = run(
                opts["target"],
                opts["args"],
                code=opts["code"],
                session=opts["session"],
                timeout=opts["timeout"],
                lang=opts["lang"],
                outputs=None,
            )
    except CoderunnerError as exc:
        from .app import cli_words

        print(f"coderunner: {cli_words(exc.message)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # `coderunner exec ... | head`: end quietly, as python does
        from .app import _stdout_to_devnull

        _stdout_to_devnull()
        sys.exit(141)
    except KeyboardInterrupt:
        _interrupted()
    sys.exit(code)


if __name__ == "__main__":
    main()
