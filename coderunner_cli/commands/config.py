"""`coderunner config`: ~/.coderunner.config."""

from __future__ import annotations

from typing import Annotated

import typer

from ._options import JsonOpt, group

cli = group("~/.coderunner.config: KEY=VALUE passed into the sandbox.")


@cli.command("show")
def config_show(
    reveal: Annotated[bool, typer.Option("--reveal", help="Show values unmasked.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the entries (values masked)."""
    from .. import config, paths, render

    env = config.load()
    shown = env if reveal else {k: config.mask(v) for k, v in env.items()}
    if as_json:
        render.emit_json(shown)
    elif not shown:
        render.note(f"coderunner: {paths.config_file()} has no entries: add one with `coderunner config set`")
    else:
        for key, value in shown.items():
            print(f"{key}={value}")


@cli.command("get")
def config_get(key: str) -> None:
    """Print one value (unmasked: for scripts)."""
    from .. import config
    from ..errors import ConfigError

    env = config.load()
    if key not in env:
        raise ConfigError(f"{key} is not set: `coderunner config set {key} VALUE`")
    print(env[key])


@cli.command("set")
def config_set(key: str, value: str) -> None:
    """Set KEY to VALUE (the file stays 0600)."""
    from .. import config, render

    env = config.load()
    env[config.check_key(key)] = value
    render.note(f"coderunner: set {key} in {config.save(env)} (applies at the next `coderunner up`)")


@cli.command("unset")
def config_unset(key: str) -> None:
    """Remove KEY."""
    from .. import config, render
    from ..errors import ConfigError

    env = config.load()
    if env.pop(key, None) is None:
        raise ConfigError(f"{key} is not set")
    config.save(env)
    render.note(f"coderunner: removed {key}")


@cli.command("path")
def config_path() -> None:
    """Print the config file's path."""
    from .. import paths

    print(paths.config_file())


@cli.command("edit")
def config_edit() -> None:
    """Open the config file in $EDITOR."""
    import os
    import shlex

    from .. import config, paths
    from ..runtimes import _proc

    path = paths.config_file()
    if not path.exists():
        config.save({})
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    code = _proc.interactive([*shlex.split(editor), str(path)])
    config.load()  # complain now if the edit broke it
    os.chmod(path, 0o600)
    raise typer.Exit(code)
