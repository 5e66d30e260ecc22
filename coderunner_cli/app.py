"""The `coderunner` command: the one place errors become exit codes.

Commands parse, call the core (sandbox.py, client.py, config.py), render.
Heavy modules are imported inside the commands that need them: this runs in
shell pipelines, and `coderunner exec` must start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .errors import CoderunnerError

# Help is click's plain text: no colour or bold codes (NO_COLOR holds), at most 80 columns, no rich import.
PLAIN = {"rich_markup_mode": None}
app = typer.Typer(
    name="coderunner",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Sandboxed code execution on your own machine.",
    context_settings={"help_option_names": ["-h", "--help"]},
    **PLAIN,
)
session_app = typer.Typer(no_args_is_help=True, help="Persistent sessions (a kernel each).", **PLAIN)
config_app = typer.Typer(no_args_is_help=True, help="~/.coderunner.config: KEY=VALUE passed into the sandbox.", **PLAIN)
app.add_typer(session_app, name="session")
app.add_typer(config_app, name="config")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# Every command that talks to a sandbox takes it; _user_errors selects it (paths.use_sandbox) before the command runs
SandboxOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        envvar="CODERUNNER_SANDBOX",
        show_default=False,
        help="Which sandbox (default: `default`); each has its own workspace, token and state. See `coderunner ls`.",
    ),
]


def _version(value: bool) -> None:
    if value:
        print(f"coderunner {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every runtime command run (on stderr).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="coderunner: %(message)s")
        logging.getLogger("coderunner").setLevel(logging.DEBUG)


# -- sandbox lifecycle ----------------------------------------------------------


@app.command()
def up(
    ctx: typer.Context,
    sandbox_name: SandboxOpt = None,
    runtime: Annotated[str | None, typer.Option(help="apple, docker, podman or local (default: auto-detect).")] = None,
    image: Annotated[str, typer.Option(help="Image to run (container runtimes).")] = "coderunner:latest",
    cpus: Annotated[float | None, typer.Option(help="CPUs for the sandbox.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory for the sandbox, e.g. 4g.")] = None,
    with_ssh_agent: Annotated[
        bool,
        typer.Option(
            "--with-ssh-agent/--without-ssh-agent",
            help="Forward your SSH agent into the sandbox (SSH_AUTH_SOCK is set there). apple: container >= 0.12 "
            "forwards $SSH_AUTH_SOCK; up to 0.11 it forwards launchd's agent, whatever $SSH_AUTH_SOCK says.",
        ),
    ] = False,
    with_credentials: Annotated[
        bool,
        typer.Option(
            "--with-credentials/--without-credentials",
            help="Mount ~/.claude ~/.codex ~/.cursor ~/.config/gh ~/.config/gcloud ~/.aws ~/.azure read-only.",
        ),
    ] = False,
    env_file: Annotated[
        list[Path] | None, typer.Option(help="KEY=VALUE file added to the sandbox's environment.")
    ] = None,
    mount: Annotated[list[str] | None, typer.Option(help="SRC:DST[:ro], repeatable.")] = None,
    network: Annotated[bool, typer.Option("--network/--no-network", help="Network inside the sandbox.")] = True,
    recreate: Annotated[
        bool,
        typer.Option(
            "--recreate", help="Recreate a running sandbox even if that ends its sessions (the workspace is kept)."
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the runtime to get ready.")] = 600,
) -> None:
    """Start the sandbox (or resume it) and print its URL.

    Options you give that differ from the running sandbox's recreate it (the
    workspace is kept); options you leave out keep what it was started with."""
    from . import render, sandbox

    console = render.stderr_console()
    names = {
        "image": "image",
        "cpus": "cpus",
        "memory": "memory",
        "with_ssh_agent": "with_ssh_agent",
        "with_credentials": "with_credentials",
        "env_file": "env_files",
        "mount": "mounts",
        "network": "network",
    }
    given = {
        field
        for param, field in names.items()
        if (src := ctx.get_parameter_source(param)) is not None and src.name != "DEFAULT"
    }
    opts = sandbox.UpOptions(
        runtime=runtime,
        image=image,
        cpus=cpus,
        memory=memory,
        with_ssh_agent=with_ssh_agent,
        with_credentials=with_credentials,
        env_files=env_file or [],
        mounts=mount or [],
        network=network,
        timeout=timeout,
        recreate=recreate,
        given=given,
    )
    with console.status("starting") as spinner:
        result = sandbox.up(opts, progress=lambda msg: spinner.update(msg))
    for w in result.warnings:
        render.note(f"coderunner: warning: {w}")
    for n in result.notes:
        render.note(f"coderunner: {n}")
    from . import paths

    which = "" if paths.sandbox() == paths.DEFAULT_SANDBOX else f" {paths.sandbox()}"
    render.note(f"coderunner: sandbox{which} {result.action} ({result.runtime}, {result.source}; {result.isolation})")
    print(result.url)


@app.command()
def build(
    runtime: Annotated[str | None, typer.Option(help="apple, docker or podman (default: auto-detect).")] = None,
    tag: Annotated[str, typer.Option("--tag", "-t", help="The image reference to build.")] = "coderunner:latest",
    base_image: Annotated[
        str | None, typer.Option(help="A Debian-based base image with (or able to apt-install) Python >= 3.12.")
    ] = None,
    ca_cert: Annotated[
        list[Path] | None, typer.Option(help="An extra CA to trust (a TLS-intercepting proxy's), repeatable.")
    ] = None,
    build_arg: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE, e.g. WITH_AGENTS=claude,codex; repeatable.")
    ] = None,
    context: Annotated[
        Path | None, typer.Option(help="The build context (default: container_image/ of these sources).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the runtime to be ready (apple: `container "
            "system start`, which downloads a kernel the first time)."
        ),
    ] = 600,
) -> None:
    """Build the sandbox image with the chosen runtime (progress on stderr)."""
    from . import render, sandbox
    from .errors import UsageError

    args: dict[str, str] = {}
    for item in build_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--build-arg {item!r}: expected KEY=VALUE")
        args[key] = value
    if base_image:
        args["BASE_IMAGE"] = base_image
    if timeout <= 0:
        raise UsageError("--timeout must be a number of seconds above 0")
    used = sandbox.build(runtime, tag, context, args, ca_cert or [], timeout=timeout)
    render.note(f"coderunner: built {tag} with {used}")


@app.command()
def down(
    sandbox_name: SandboxOpt = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Also delete the sandbox and its secrets (and the local workspace).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a graceful stop.")] = 10,
) -> None:
    """Stop the sandbox gracefully."""
    from . import render, sandbox

    render.note(f"coderunner: {sandbox.down(remove, timeout)}")


@app.command()
def status(as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """Runtime, isolation, state, URL, health and sessions. Exits 3 when the sandbox is not up."""
    from . import render, sandbox

    report = sandbox.status()
    render.fields(report.as_dict(), as_json=as_json)
    if not report.running:
        raise typer.Exit(3)


@app.command(name="ls")
def ls(as_json: JsonOpt = False) -> None:
    """List the sandboxes: name, runtime, state, URL, created, options."""
    from . import render, sandbox

    rows = [r.as_dict() for r in sandbox.listing()]
    if as_json:
        render.emit_json(rows)
        return
    for r in rows:
        r["options"] = _options_summary(r["options"])
    render.table(
        rows,
        ["name", "runtime", "state", "url", "created", "options"],
        as_json=False,
        empty="no sandboxes: start one with `coderunner up` (or `coderunner up --name NAME`)",
    )


def _options_summary(options: dict) -> str:
    """The options a sandbox was started with that differ from `up`'s defaults, as flags."""
    parts = []
    if options.get("image") not in (None, "coderunner:latest"):
        parts.append(f"--image {options['image']}")
    for key in ("cpus", "memory"):
        if options.get(key):
            parts.append(f"--{key} {options[key]}")
    if options.get("network") is False:
        parts.append("--no-network")
    for key, flag in (("ssh_agent", "--with-ssh-agent"), ("credentials", "--with-credentials")):
        if options.get(key):
            parts.append(flag)
    parts += [f"--mount {m}" for m in options.get("mounts") or []]
    parts += [f"--env-file {f}" for f in options.get("env_files") or []]
    return " ".join(parts) or "-"


@app.command()
def logs(
    sandbox_name: SandboxOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines.")] = None,
) -> None:
    """The gateway's log."""
    from . import sandbox

    current, runtime = sandbox.require_running()
    raise typer.Exit(runtime.logs(current.name, follow, tail))


@app.command()
def shell(sandbox_name: SandboxOpt = None) -> None:
    """An interactive shell inside the sandbox."""
    from . import sandbox

    current, runtime = sandbox.require_running()
    raise typer.Exit(runtime.exec_interactive(current.name, ["bash"]))


AGENTS = {"claude": "claude", "codex": "codex", "gemini": "gemini", "cursor": "cursor-agent"}


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    agent: Annotated[str, typer.Argument(help="claude, codex, gemini or cursor.")],
    sandbox_name: SandboxOpt = None,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the agent.")] = None,
) -> None:
    """Run an AI agent CLI inside the sandbox (where the image has it)."""
    from . import sandbox
    from .errors import UsageError

    if agent not in AGENTS:
        raise UsageError(f"unknown agent {agent!r}: use one of {', '.join(AGENTS)}")
    current, runtime = sandbox.require_running()
    code = runtime.exec_interactive(current.name, [AGENTS[agent], *(args or [])])
    if code == 127:
        print(
            f"coderunner: `{AGENTS[agent]}` is not installed in this sandbox: use an image built with it "
            "(or, for the local runtime, install it on the host)",
            file=sys.stderr,
        )
    raise typer.Exit(code)


# -- running code ---------------------------------------------------------------------


@app.command(name="exec", context_settings={"allow_interspersed_args": False})
def exec_(
    sandbox_name: SandboxOpt = None,
    file: Annotated[
        str | None, typer.Argument(help="Script to run (.py, .sh), or - for stdin.", show_default=False)
    ] = None,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the script.", show_default=False)] = None,
    code: Annotated[str | None, typer.Option("-c", "--code", help="Code to run instead of a file.")] = None,
    session: Annotated[str | None, typer.Option("--session", "-s", help="Run in this session (keeps state).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the code is stopped (exit 124).")] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", "-l", help="python or bash (default: from the extension).")
    ] = None,
    outputs: Annotated[Path | None, typer.Option(help="Where to save images (default ./coderunner-outputs).")] = None,
    sync: Annotated[
        Path | None,
        typer.Option(
            "-w",
            "--sync",
            metavar="DIR",
            show_default=False,
            help="Upload DIR to the workspace (as DIR's name) and run the script there.",
        ),
    ] = None,
) -> None:
    """Run code in the sandbox; exit with its exit code."""
    from .commands.exec_ import run as run_exec

    raise typer.Exit(run_exec(file, args or [], code, session, timeout, lang, outputs, sync))


@app.command()
def mcp(sandbox_name: SandboxOpt = None) -> None:
    """An MCP server on stdio bridged to the sandbox: `claude mcp add coderunner -- coderunner mcp`."""
    from .mcp_bridge import run as run_bridge

    run_bridge()


BROWSE_FORMATS = ("text", "markdown", "html", "links")


@app.command()
def browse(
    url: Annotated[str, typer.Argument(help="An http(s) URL, opened in the sandbox's Chromium.")],
    sandbox_name: SandboxOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text, markdown, html or links.")] = "text",
    screenshot: Annotated[Path | None, typer.Option(help="Save a PNG screenshot here instead.")] = None,
    full_page: Annotated[bool, typer.Option(help="With --screenshot: the whole page.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the page.")] = 30,
) -> None:
    """Open a page in the sandbox's headless browser; print its text, markdown, HTML or links."""
    from . import render
    from .client import CodeRunner
    from .commands.exec_ import check_timeout
    from .errors import UsageError

    if format not in BROWSE_FORMATS:
        raise UsageError(f"--format {format!r}: use one of {', '.join(BROWSE_FORMATS)}")
    check_timeout(timeout)

    with CodeRunner() as cr:
        if screenshot is not None:
            png = cr.browser_screenshot(url, full_page=full_page, timeout=timeout)
            screenshot.write_bytes(png)
            render.note(f"coderunner: saved a screenshot of {url} to {screenshot}")
            return
        page = cr.browser_content(url, format, timeout=timeout)
    if format == "links":
        for link in page["content"]:
            print(f"{link['href']}\t{link['text']}")
    else:
        print(page["content"])


skills_app = typer.Typer(no_args_is_help=True, help="Skills: instructions and scripts agents can use.", **PLAIN)
app.add_typer(skills_app, name="skills")


@skills_app.command("ls")
def skills_ls(as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """List the skills in the sandbox."""
    from . import render
    from .client import CodeRunner

    with CodeRunner() as cr:
        rows = cr.skills()
    render.table(rows, ["name", "source", "description"], as_json=as_json, empty="no skills")


@skills_app.command("show")
def skills_show(name: str, as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """A skill's instructions and files."""
    from . import render
    from .client import CodeRunner

    with CodeRunner() as cr:
        info = cr.skill(name)
    if as_json:
        render.emit_json(info)
        return
    print(f"{info['name']} ({info['source']}): {info['description']}\npath: {info['path']}\nfiles:")
    for f in info["files"]:
        print(f"  {f}")
    print()
    print(info["instructions"].rstrip())


# -- sessions ---------------------------------------------------------------------------


@session_app.command("new")
def session_new(
    sandbox_name: SandboxOpt = None,
    name: Annotated[str | None, typer.Argument(help="A name to refer to it by.")] = None,
    lang: Annotated[str, typer.Option("--lang", "-l", help="python or bash.")] = "python",
    as_json: JsonOpt = False,
) -> None:
    """Create a session."""
    from . import render
    from .client import CodeRunner
    from .commands.exec_ import check_lang, check_session_name

    check_lang(lang)
    if name is not None:
        check_session_name(name)
    with CodeRunner() as cr:
        info = cr.session(name, lang).info
    if as_json:
        render.emit_json(info)
    else:
        print(info["name"] or info["session_id"])


@session_app.command("ls")
def session_ls(as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """List sessions."""
    from . import render
    from .client import CodeRunner

    with CodeRunner() as cr:
        rows = cr.sessions()
    render.table(
        rows,
        ["session_id", "name", "language", "executions", "busy", "restarts"],
        as_json=as_json,
        empty="no sessions: create one with `coderunner session new`",
    )


def _session_action(action: str, name: str) -> None:
    from . import render
    from .client import CodeRunner
    from .commands.exec_ import check_session_name

    check_session_name(name)
    with CodeRunner() as cr:
        getattr(cr, action)(name)
    render.note(f"coderunner: session {name}: {action.replace('_session', '')} done")


@session_app.command("rm")
def session_rm(
    name: Annotated[str, typer.Argument(help="Session name or id.")], sandbox_name: SandboxOpt = None
) -> None:
    """Delete a session."""
    _session_action("delete_session", name)


@session_app.command("restart")
def session_restart(
    name: Annotated[str, typer.Argument(help="Session name or id.")], sandbox_name: SandboxOpt = None
) -> None:
    """Give a session a fresh kernel (its state is cleared)."""
    _session_action("restart", name)


@session_app.command("interrupt")
def session_interrupt(
    name: Annotated[str, typer.Argument(help="Session name or id.")], sandbox_name: SandboxOpt = None
) -> None:
    """Interrupt what a session is running."""
    _session_action("interrupt", name)


# -- config -----------------------------------------------------------------------------


@config_app.command("show")
def config_show(
    reveal: Annotated[bool, typer.Option("--reveal", help="Show values unmasked.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the entries (values masked)."""
    from . import config, paths, render

    env = config.load()
    shown = env if reveal else {k: config.mask(v) for k, v in env.items()}
    if as_json:
        render.emit_json(shown)
    elif not shown:
        render.note(f"coderunner: {paths.config_file()} has no entries: add one with `coderunner config set`")
    else:
        for key, value in shown.items():
            print(f"{key}={value}")


@config_app.command("get")
def config_get(key: str) -> None:
    """Print one value (unmasked: for scripts)."""
    from . import config
    from .errors import ConfigError

    env = config.load()
    if key not in env:
        raise ConfigError(f"{key} is not set: `coderunner config set {key} VALUE`")
    print(env[key])


@config_app.command("set")
def config_set(key: str, value: str) -> None:
    """Set KEY to VALUE (the file stays 0600)."""
    from . import config, render

    env = config.load()
    env[config.check_key(key)] = value
    render.note(f"coderunner: set {key} in {config.save(env)} (applies at the next `coderunner up`)")


@config_app.command("unset")
def config_unset(key: str) -> None:
    """Remove KEY."""
    from . import config, render
    from .errors import ConfigError

    env = config.load()
    if env.pop(key, None) is None:
        raise ConfigError(f"{key} is not set")
    config.save(env)
    render.note(f"coderunner: removed {key}")


@config_app.command("path")
def config_path() -> None:
    """Print the config file's path."""
    from . import paths

    print(paths.config_file())


@config_app.command("edit")
def config_edit() -> None:
    """Open the config file in $EDITOR."""
    import os
    import shlex

    from . import config, paths
    from .runtimes import _proc

    path = paths.config_file()
    if not path.exists():
        config.save({})
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    code = _proc.interactive([*shlex.split(editor), str(path)])
    config.load()  # complain now if the edit broke it
    os.chmod(path, 0o600)
    raise typer.Exit(code)


def _user_errors(fn):
    """Errors a user can cause become one line on stderr and their exit code.
    Applied to every command, so CliRunner and the installed binary agree."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if "sandbox_name" in kwargs:
                from . import paths

                paths.use_sandbox(kwargs["sandbox_name"])
            return fn(*args, **kwargs)
        except CoderunnerError as exc:
            print(f"coderunner: {cli_words(exc.message)}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # `coderunner exec ... | head`: end quietly, as python does
            _stdout_to_devnull()
            raise typer.Exit(141) from None
        except KeyboardInterrupt:  # typer would turn it into a silent 130
            print("coderunner: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def _stdout_to_devnull() -> None:
    """The reader is gone: later writes and the flush at exit must not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (CliRunner)
        pass


# what the gateway tells HTTP clients, said as the CLI's commands and options
_HTTP_TO_CLI = (
    ("GET /v1/sessions", "`coderunner session ls`"),
    ("POST /v1/sessions", "`coderunner session new`"),
    ("GET /v1/skills", "`coderunner skills ls`"),
)


def cli_words(message: str) -> str:
    import re

    for route, command in _HTTP_TO_CLI:
        message = message.replace(route, command)
    message = re.sub(r"field 'code'", "the code", message)
    return re.sub(r"field '(\w+)'", lambda m: "--" + m.group(1).replace("_", "-"), message)


for _typer in (app, session_app, config_app, skills_app):
    for _cmd in _typer.registered_commands:
        _cmd.callback = _user_errors(_cmd.callback)


def main() -> None:
    try:
        rv = app(standalone_mode=False)
    except CoderunnerError as exc:  # raised outside a command (a callback)
        print(f"coderunner: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("coderunner: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `coderunner exec ... | head`
        _stdout_to_devnull()
        sys.exit(141)
    except Exception as exc:
        # click's exceptions (vendored as typer._click in typer >= 0.28): duck-typed
        if type(exc).__name__ == "Abort":
            print("coderunner: interrupted", file=sys.stderr)
            sys.exit(130)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
