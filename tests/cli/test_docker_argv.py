"""docker and podman: the exact argv (end to end runs with the image, in CI's docker job)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coderunner_cli.runtimes.base import ContainerSpec, Mount, credential_mounts
from coderunner_cli.runtimes.docker import DockerRuntime


def spec(**kw) -> ContainerSpec:
    base = dict(
        name="coderunner",
        image="coderunner:latest",
        secrets_dir=Path("/h/state/secrets"),
        env_file=Path("/h/state/secrets/sandbox.env"),
        workspace=Path("/h/state/workspace"),
        run_dir=Path("/h/state/run"),
        host_port=43210,
    )
    base.update(kw)
    return ContainerSpec(**base)


@pytest.mark.parametrize("binary", ["docker", "podman"])
def test_run_argv(binary, tmp_path):
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "sandbox.env").write_text("OPENAI_API_KEY='sk-secret'\n")
    s = spec(
        cpus=2,
        memory="4g",
        mounts=[Mount("/h/data", "/data", True)],
        ssh_agent="/tmp/ssh-XYZ/agent.1",
        secrets_dir=tmp_path,
        env_file=tmp_path / "sandbox.env",
    )
    uid, gid = (os.getuid(), os.getgid()) if os.getuid() else (1000, 1000)
    assert DockerRuntime(binary).run_argv(s) == [
        binary,
        "run",
        "-d",
        "--name",
        "coderunner",
        "--init",
        "--label",
        "coderunner=1",
        "--hostname",
        "coderunner",
        "--cpus",
        "2",
        "--memory",
        "4g",
        "--pids-limit",
        "1024",
        "--security-opt",
        "no-new-privileges",
        # the gateway: root with these only; the code it runs: none at all
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--cap-add",
        "DAC_OVERRIDE",
        "--cap-add",
        "FOWNER",
        "--cap-add",
        "SETUID",
        "--cap-add",
        "SETGID",
        "--cap-add",
        "KILL",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,nosuid,nodev,exec,size=1g",
        "--tmpfs",
        "/run:rw,nosuid,nodev,size=64m",
        "--tmpfs",
        "/var/tmp:rw,nosuid,nodev,size=64m",
        "-p",
        "127.0.0.1:43210:8222",
        "-v",
        "/h/state/workspace:/workspace",
        "-e",
        "CODERUNNER_TOKEN",
        "-e",
        "OPENAI_API_KEY",  # names only: values via the client's env
        "-v",
        "/h/data:/data:ro",
        "-v",
        "/tmp/ssh-XYZ/agent.1:/run/host-services/ssh-auth.sock",
        "-e",
        "SSH_AUTH_SOCK=/run/host-services/ssh-auth.sock",
        "coderunner:latest",
        "coderunner-gateway",
        "--workspace",
        "/workspace",
        "--isolation",
        "setid",
        "--code-uid",
        str(uid),
        "--code-gid",
        str(gid),
        "--base-home",
        "/home/sandbox",
        "--pass-env",
        "OPENAI_API_KEY",
        "--host",
        "0.0.0.0",
        "--port",
        "8222",
    ]
    assert not any("sk-secret" in a for a in DockerRuntime(binary).run_argv(s))
    env = DockerRuntime(binary)._run_env(s)
    assert env["OPENAI_API_KEY"] == "sk-secret" and env["CODERUNNER_TOKEN"] == "tok"


def test_no_network_uses_a_socket_and_no_port():
    argv = DockerRuntime("docker").run_argv(spec(network=False, env_file=None))
    assert "-p" not in argv
    i = argv.index("--network")
    assert argv[i : i + 4] == ["--network", "none", "-v", "/h/state/run:/run/coderunner/gateway/run"]
    assert argv[-2:] == ["--uds", "/run/coderunner/gateway/run/gateway.sock"]
    assert argv[argv.index("--socket-owner") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert "--env-file" not in argv


def test_published_port_is_loopback_only():
    argv = DockerRuntime("docker").run_argv(spec())
    port = argv[argv.index("-p") + 1]
    assert port.startswith("127.0.0.1:")


def test_credentials_are_read_only_and_only_existing(tmp_path):
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".config" / "gh").mkdir(parents=True)
    mounts = credential_mounts(tmp_path)
    assert mounts == [
        Mount(str(tmp_path / ".config/gh"), "/home/sandbox/.config/gh", True),
        Mount(str(tmp_path / ".aws"), "/home/sandbox/.aws", True),
    ]


def test_user_skills_are_mounted_read_only():
    argv = DockerRuntime("docker").run_argv(spec(skills_dir=Path("/h/state/skills")))
    assert "/h/state/skills:/run/coderunner/skills:ro" in argv
    i = argv.index("--user-skills-dir")
    assert argv[i + 1] == "/run/coderunner/skills"
