"""`up`, `build`, `down`, `status`, `ls`, and what runs inside a sandbox: `logs`, `shell`, `run`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import JsonOpt, SandboxOpt, group

if TYPE_CHECKING:
    from ..sandbox_up import UpResult

cli = group()


# `up`'s options, named here so that its signature stays short
RuntimeOpt = Annotated[str | None, typer.Option(help="apple, docker, podman or local (default: auto-detect).")]
ImageOpt = Annotated[str, typer.Option(help="Image to run (container runtimes).")]
CpusOpt = Annotated[float | None, typer.Option(help="CPUs for the sandbox.")]
MemoryOpt = Annotated[str | None, typer.Option(help="Memory for the sandbox, e.g. 4g.")]
SshAgentOpt = Annotated[
    bool,
    typer.Option(
        "--with-ssh-agent/--without-ssh-agent",
        help="Forward your SSH agent into the sandbox (SSH_AUTH_SOCK is set there). apple: container >= 0.12 "
        "forwards $SSH_AUTH_SOCK; up to 0.11 it forwards launchd's agent, whatever $SSH_AUTH_SOCK says.",
    ),
]
CredentialsOpt = Annotated[
    bool,
    typer.Option(
        "--with-credentials/--without-credentials",
        help="Mount ~/.claude ~/.codex ~/.cursor ~/.config/gh ~/.config/gcloud ~/.aws ~/.azure read-only.",
    ),
]
EnvFileOpt = Annotated[list[Path] | None, typer.Option(help="KEY=VALUE file added to the sandbox's environment.")]
MountOpt = Annotated[list[str] | None, typer.Option(help="SRC:DST[:ro], repeatable.")]
NetworkOpt = Annotated[bool, typer.Option("--network/--no-network", help="Network inside the sandbox.")]
RecreateOpt = Annotated[
    bool,
    typer.Option(
        "--recreate", help="Recreate a running sandbox even if that ends its sessions (the workspace is kept)."
    ),
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the runtime to get ready.")]

# `up`'s parameter -> its UpOptions field, for the options that recreate a sandbox when they differ
_RECREATING = {
    "image": "image",
    "cpus": "cpus",
    "memory": "memory",
    "with_ssh_agent": "with_ssh_agent",
    "with_credentials": "with_credentials",
    "env_file": "env_files",
    "mount": "mounts",
    "network": "network",
}


@cli.command()
def up(
    ctx: typer.Context,
    sandbox_name: SandboxOpt = None,
    runtime: RuntimeOpt = None,
    image: ImageOpt = "coderunner:latest",
    cpus: CpusOpt = None,
    memory: MemoryOpt = None,
    with_ssh_agent: SshAgentOpt = False,
    with_credentials: CredentialsOpt = False,
    env_file: EnvFileOpt = None,
    mount: MountOpt = None,
    network: NetworkOpt = True,
    recreate: RecreateOpt = False,
    timeout: TimeoutOpt = 600,
) -> None:
    """Start the sandbox (or resume it) and print its URL.

    Options you give that differ from the running sandbox's recreate it (the
    workspace is kept); options you leave out keep what it was started with."""
    from .. import render, sandbox_up

    console = render.stderr_console()
    given = {
        field
        for param, field in _RECREATING.items()
        if (src := ctx.get_parameter_source(param)) is not None and src.name != "DEFAULT"
    }
    opts = sandbox_up.UpOptions(
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
        result = sandbox_up.up(opts, progress=lambda msg: spinner.update(msg))
    _report_up(result)


def _report_up(result: UpResult) -> None:
    """`up`'s warnings and notes, the one line saying what it did, and the URL on stdout."""
    from .. import paths, render

    for w in result.warnings:
        render.note(f"coderunner: warning: {w}")
    for n in result.notes:
        render.note(f"coderunner: {n}")
    which = "" if paths.sandbox() == paths.DEFAULT_SANDBOX else f" {paths.sandbox()}"
    render.note(f"coderunner: sandbox{which} {result.action} ({result.runtime}, {result.source}; {result.isolation})")
    print(result.url)


@cli.command()
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
    from .. import render, sandbox
    from ..errors import UsageError

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


@cli.command()
def down(
    sandbox_name: SandboxOpt = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Also delete the sandbox and its secrets (and the local workspace).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a graceful stop.")] = 10,
) -> None:
    """Stop the sandbox gracefully."""
    from .. import render, sandbox

    render.note(f"coderunner: {sandbox.down(remove, timeout)}")


@cli.command()
def status(as_json: JsonOpt = False, sandbox_name: SandboxOpt = None) -> None:
    """Runtime, isolation, state, URL, health and sessions. Exits 3 when the sandbox is not up."""
    from .. import render, sandbox

    report = sandbox.status()
    render.fields(report.as_dict(), as_json=as_json)
    if not report.running:
        raise typer.Exit(3)


@cli.command(name="ls")
def ls(as_json: JsonOpt = False) -> None:
    """List the sandboxes: name, runtime, state, URL, created, options."""
    from .. import render, sandbox

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


@cli.command()
def logs(
    sandbox_name: SandboxOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines.")] = None,
) -> None:
    """The gateway's log."""
    from .. import sandbox

    current, runtime = sandbox.require_running()
    raise typer.Exit(runtime.logs(current.name, follow, tail))


@cli.command()
def shell(sandbox_name: SandboxOpt = None) -> None:
    """An interactive shell inside the sandbox."""
    from .. import sandbox

    current, runtime = sandbox.require_running()
    raise typer.Exit(runtime.exec_interactive(current.name, ["bash"]))


AGENTS = {"claude": "claude", "codex": "codex", "gemini": "gemini", "cursor": "cursor-agent"}


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    agent: Annotated[str, typer.Argument(help="claude, codex, gemini or cursor.")],
    sandbox_name: SandboxOpt = None,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the agent.")] = None,
) -> None:
    """Run an AI agent CLI inside the sandbox (where the image has it)."""
    from .. import sandbox
    from ..errors import UsageError

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
