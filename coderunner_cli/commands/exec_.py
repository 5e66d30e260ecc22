"""`coderunner exec`: run a file, -c CODE or stdin in the sandbox, like a local interpreter.

stdout and stderr stream to ours as produced, byte for byte; images and HTML
are saved to files (said on stderr); the exit code is the code's. Ctrl-C interrupts the remote code
(a session's kernel is interrupted, a script is killed) and exits 130.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sys
from pathlib import Path

from ..errors import UsageError
from ._sync import SyncPlan, missing_sibling_hint, plan_sync, upload

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing is not imported on the way to the first byte
    from typing import Any

EXTENSIONS = {".py": "python", ".sh": "bash", ".bash": "bash"}
LANGUAGES = ("python", "bash")
SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_lang(lang: str | None) -> None:
    if lang is not None and lang not in LANGUAGES:
        raise UsageError(f"--lang {lang!r}: use python or bash")


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout {timeout:g}: give a positive number of seconds")


def check_session_name(name: str) -> None:
    if not SESSION_NAME.fullmatch(name):
        raise UsageError(f"session name {name[:80]!r}: use letters, digits, '-', '_' and '.' (at most 64)")


def shebang_language(first_line: str) -> str | None:
    """python or bash from a ``#!`` line (``#!/usr/bin/env python3``, ``#!/bin/sh``), else None."""
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:].split()
    if words and words[0].rsplit("/", 1)[-1] == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    prog = words[0].rsplit("/", 1)[-1] if words else ""
    if re.fullmatch(r"python[0-9.]*", prog):
        return "python"
    return "bash" if prog in ("sh", "bash", "dash") else None


IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg", "image/gif": "gif"}
SAVED_TYPES = {**IMAGE_TYPES, "text/html": "html"}  # in this order: a figure's PNG before its HTML


def resolve_code(target: str | None, code: str | None, lang: str | None) -> tuple[str, str, str | None, bool]:
    """(code, language, filename, code_came_from_stdin)."""
    if code is not None:
        return code, lang or "python", None, False
    if target is None:
        raise UsageError("give a FILE, `-c CODE`, or `-` to read code from stdin")
    if target == "-":
        if sys.stdin.isatty():
            raise UsageError("`-` reads code from stdin, but stdin is a terminal: pipe code in")
        return sys.stdin.read(), lang or "python", None, True
    path = Path(target)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {target}") from None
    except IsADirectoryError:
        raise UsageError(f"{target} is a directory, not a script") from None
    except UnicodeDecodeError:
        raise UsageError(f"{target} is not UTF-8 text") from None
    except PermissionError:
        raise UsageError(f"cannot read {target}: permission denied") from None
    language = lang or EXTENSIONS.get(path.suffix.lower()) or shebang_language(text.split("\n", 1)[0])
    if language is None:
        raise UsageError(
            f"cannot tell the language of {target} (not .py, .sh or .bash, no python or sh #! line): "
            "pass --lang python or --lang bash"
        )
    return text, language, path.name, False


def run(
    target: str | None,
    args: list[str],
    code: str | None,
    session: str | None,
    timeout: float | None,
    lang: str | None,
    outputs: Path | None,
    sync: Path | None = None,
) -> int:
    from ..client import CodeRunner

    check_lang(lang)
    check_timeout(timeout)
    if session is not None:
        check_session_name(session)
    if code is not None and target is not None:
        args = [target, *args]
        target = None
    if sync is not None and session is not None:
        raise UsageError("-w runs a script in its folder; --session code runs in its kernel: give one of them")
    source, language, filename, from_stdin = resolve_code(target, code, lang)
    language_or_none: str | None = language
    if session is not None and lang is None and (code is not None or from_stdin):
        language_or_none = None  # code with no file to tell its language runs in the session's (a bash session)
    plan = plan_sync(sync, target) if sync is not None else None
    if plan is not None:
        filename = plan.script
    stdin = None
    if not from_stdin and not sys.stdin.isatty() and session is None:
        stdin = sys.stdin.buffer.read()  # bytes: sent exactly, as base64 when not UTF-8
    if session is not None and args:
        raise UsageError("arguments go to scripts; a --session runs code in its kernel without argv")
    writer = _EventWriter(session, target, plan, _OutputSaver(outputs))
    cr = CodeRunner()
    # a session: say when ours waits behind others; Ctrl-C on code that ignores it restarts the kernel
    watch = None
    if session is not None:
        from ._session_watch import SessionWatch

        watch = SessionWatch(session)
        watch.before(cr)
    try:
        if plan is not None:
            upload(cr, plan)
        with (
            watch or contextlib.nullcontext(),
            cr.stream(
                source,
                session=session,
                timeout=timeout,
                language=language_or_none,
                argv=args or None if session is None else None,
                stdin=stdin,
                filename=filename if session is None else None,
                cwd=plan.name if plan is not None else None,
            ) as events,
        ):
            for event in events:
                if watch is not None:
                    watch.event(event.get("type"))
                writer.write(event)
    except KeyboardInterrupt:
        return _interrupted(cr, session, watch)
    finally:
        cr.close()
    if watch is not None and watch.interrupts:
        return _after_interrupts(watch, session)
    return writer.exit_code


class _EventWriter:
    """Each event of an execution where a terminal user expects it: output bytes on stdout and
    stderr, figures and HTML saved, errors and the final message on stderr."""

    def __init__(self, session: str | None, target: str | None, plan: SyncPlan | None, saver: _OutputSaver) -> None:
        self.session, self.target, self.plan, self.saver = session, target, plan, saver
        self.exit_code = 1
        self.script_error: dict[str, Any] | None = None

    def write(self, event: dict[str, Any]) -> None:
        from ..client import event_bytes

        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            stream = sys.stdout.buffer if kind == "stdout" else sys.stderr.buffer
            stream.write(event_bytes(event))
            stream.flush()
        elif kind in ("display", "result"):
            self.saver.save(event)
        elif kind == "error" and self.session is not None:
            lines = event.get("traceback") or [f"{event['ename']}: {event['evalue']}"]
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()
        elif kind == "error":
            self.script_error = event
        elif kind == "done":
            self._done(event)

    def _done(self, event: dict[str, Any]) -> None:
        self.exit_code = int(event.get("exit_code", 1))
        if event.get("message") and event.get("status") != "ok":
            print(f"coderunner: {event['message']}", file=sys.stderr)
        if (
            self.script_error is not None
            and self.plan is None
            and self.target not in (None, "-")
            and (hint := missing_sibling_hint(self.target, self.script_error))
        ):
            print(hint, file=sys.stderr)


def _interrupted(cr: Any, session: str | None, watch: Any) -> int:
    """Ctrl-C while the stream ran: interrupt the session's code (closing the stream kills a script)."""
    from ..client import CodeRunner

    if session is not None and not (watch is not None and watch.left_queue):
        try:
            with CodeRunner() as other:
                other.interrupt(session)
        except Exception as exc:  # best effort while exiting on Ctrl-C
            print(f"coderunner: could not interrupt session {session}: {exc}", file=sys.stderr)
    cr.close()  # closing the stream kills a script
    print("coderunner: interrupted", file=sys.stderr)
    return 130


def _after_interrupts(watch: Any, session: str | None) -> int:
    """The stream ended after Ctrl-C: say whether the code stopped or its kernel was restarted."""
    watch.finish()
    if watch.restarted:
        print(
            f"coderunner: the code ignored Ctrl-C: restarted the kernel of session {session}; its state was lost",
            file=sys.stderr,
        )
    elif watch.failed:
        print(f"coderunner: could not interrupt session {session}: {watch.failed}", file=sys.stderr)
    else:
        print("coderunner: interrupted", file=sys.stderr)
    return 130


class _OutputSaver:
    """Rich outputs: images and HTML to files (path said on stderr), text/plain of results to stdout
    (a result's HTML, such as a DataFrame's, is not saved: its text is shown)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.count = 0

    def save(self, event: dict) -> None:
        data = event.get("data") or {}
        for mime, ext in SAVED_TYPES.items():
            if mime in data and not (mime == "text/html" and event.get("type") == "result"):
                from .. import paths

                directory = self.directory or paths.outputs_dir()
                directory.mkdir(parents=True, exist_ok=True)
                self.count += 1
                path = directory / f"output-{os.getpid()}-{self.count}.{ext}"
                raw = data[mime]
                path.write_bytes(raw.encode() if mime in ("image/svg+xml", "text/html") else base64.b64decode(raw))
                print(f"coderunner: saved {mime} to {path}", file=sys.stderr)
                return
        if event.get("type") == "result" and "text/plain" in data:
            sys.stdout.write(data["text/plain"] + "\n")
            sys.stdout.flush()
