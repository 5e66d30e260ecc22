"""The `coderunner` entry point: a plain `exec` runs without importing typer, rich or click.

`coderunner exec` runs in shell loops, so its start-up is paid on every call. This parses
exactly the common forms

    coderunner exec [--name N] [-c CODE] [-s/--session S] [--timeout T] [-l/--lang L] [FILE|- [ARGS...]]

(options before FILE, as `--opt value` or `--opt=value`) and calls commands/exec_.py as the
Typer command does. Anything else (other commands, --help, --outputs, `--`, attached short
values, a bad --timeout, a missing value) goes to the full CLI in app.py, so its messages and
exit codes are the CLI's own.
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


def main() -> None:
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
        print("coderunner: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    main()
