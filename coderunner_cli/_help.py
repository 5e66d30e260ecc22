"""`coderunner`, `coderunner --help`, `coderunner -h`: the top-level help without importing typer.

Typer and click cost most of the CLI's start-up, and the help they print changes only when the code
does. The first call renders it with the Typer CLI itself (app.main, output captured), prints it and
keeps it in a cache file with everything it depends on: the command line, the program name, the
terminal width and whether the streams are terminals, the environment variables typer, click and
the terminal read, the Python, and the size and mtime of every module file loaded while rendering
(coderunner_cli's, typer's, click's, the standard library's). A later call whose key is the same and
whose files are unchanged prints the kept bytes and exits with the kept code; anything else renders
again. So the output is always byte for byte what the Typer CLI prints (tests/cli/test_fast_path.py
compares them), never stale.

The cache lives in ``$CODERUNNER_HOME/cache`` when that is set (tests keep it in their temp dir),
else ``$XDG_CACHE_HOME/coderunner`` (``~/.cache/coderunner``; ``~/Library/Caches/coderunner`` on
macOS). Deleting it is always safe.
"""

from __future__ import annotations

import os
import sys

FORMAT = 1
ARGVS: tuple[list[str], ...] = ([], ["--help"], ["-h"])
# what typer, click or the terminal may read while rendering
ENV = (
    "COLUMNS",
    "LINES",
    "TERM",
    "NO_COLOR",
    "FORCE_COLOR",
    "PY_COLORS",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "TERMINAL_WIDTH",
    "GITHUB_ACTIONS",
    "TYPER_USE_RICH",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "TYPER_STANDARD_TRACEBACK",
    "_TYPER_STANDARD_TRACEBACK",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
)


def wanted(argv: list[str]) -> bool:
    return argv in ARGVS


def cache_dir() -> str:
    env = os.environ
    if env.get("CODERUNNER_HOME"):
        return os.path.join(env["CODERUNNER_HOME"], "cache")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/coderunner")
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "coderunner")


def _terminal(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
        return size.columns, size.lines
    except (OSError, ValueError):
        return None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def key(argv: list[str]) -> tuple:
    """Everything but the files that the rendered help may depend on."""
    out, err = sys.stdout, sys.stderr
    return (
        FORMAT,
        tuple(argv),
        os.path.basename(sys.argv[0]) if sys.argv else "",  # click's program name: these two
        getattr(sys.modules.get("__main__"), "__package__", None),
        sys.version,
        sys.prefix,
        os.path.dirname(os.path.abspath(__file__)),
        tuple(os.environ.get(name) for name in ENV),
        _terminal(sys.__stdout__.fileno()) if sys.__stdout__ is not None else None,
        _isatty(out),
        _isatty(err),
        getattr(out, "encoding", None),
        getattr(err, "encoding", None),
        getattr(out, "errors", None),
        getattr(err, "errors", None),
    )


def _path(k: tuple) -> str:
    import zlib

    return os.path.join(cache_dir(), f"help-{zlib.crc32(repr(k).encode()):08x}.marshal")


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def load(k: tuple) -> tuple[bytes, bytes, int] | None:
    """The kept (stdout, stderr, exit code) for key ``k`` if every file it came from is unchanged."""
    import marshal

    try:
        with open(_path(k), "rb") as f:
            entry = marshal.loads(f.read())
        kept, files, out, err, code = entry
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if kept != k:
        return None
    for path, mtime, size in files:
        if _stamp(path) != (mtime, size):
            return None
    return out, err, code


def store(k: tuple, files: list[tuple[str, int, int]], out: bytes, err: bytes, code: int) -> None:
    import marshal

    path = _path(k)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps((k, files, out, err, code)))
        os.replace(tmp, path)
    except OSError:  # a read-only or full disk: the help was printed, the next call renders again
        try:
            os.unlink(tmp)
        except OSError:
            pass


class _Capture:
    """A text stream like ``real`` (encoding, errors, isatty) that keeps what is written."""

    def __init__(self, real) -> None:
        import io

        self.raw = io.BytesIO()
        encoding = getattr(real, "encoding", None) or "utf-8"
        errors = getattr(real, "errors", None) or "strict"
        tty = _isatty(real)

        class Stream(io.TextIOWrapper):
            def isatty(self) -> bool:
                return tty

        self.stream = Stream(self.raw, encoding=encoding, errors=errors, write_through=True)

    def value(self) -> bytes:
        self.stream.flush()
        return self.raw.getvalue()


def render(argv: list[str]) -> tuple[list[tuple[str, int, int]], bytes, bytes, int]:
    """Run the Typer CLI (app.main) for ``argv`` with its output captured: (files, stdout, stderr, code)."""
    from . import app

    out, err = _Capture(sys.stdout), _Capture(sys.stderr)
    real = sys.stdout, sys.stderr
    saved_argv = sys.argv
    sys.argv = [sys.argv[0] if sys.argv else "coderunner", *argv]
    sys.stdout, sys.stderr = out.stream, err.stream
    code: object = 0
    try:
        app.main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.stdout, sys.stderr = real
        sys.argv = saved_argv
    if code is None:
        code = 0
    elif not isinstance(code, int):
        raise RuntimeError(f"help exited with {code!r}")
    files = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and (stamp := _stamp(path)) is not None:
            files.append((path, *stamp))
    files.sort()
    return files, out.value(), err.value(), code


def main(argv: list[str]) -> None:
    k = key(argv)
    kept = load(k)
    if kept is None:
        files, out, err, code = render(argv)
        store(k, files, out, err, code)
    else:
        out, err, code = kept
    try:
        for stream, data in ((sys.stdout, out), (sys.stderr, err)):
            if data:
                stream.flush()
                stream.buffer.write(data)
                stream.buffer.flush()
    except BrokenPipeError:  # `coderunner --help | head -1`, as app.main
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        sys.exit(141)
    sys.exit(code)
