"""The services' Dockerfiles: hadolint-clean (.hadolint.yaml fails on any finding), CPU torch by default, and
each image starts a real `dogsearch` command on the port the compose file probes."""
from __future__ import annotations

import json
import re
import shlex

import pytest

from dogsearch.cli import parser
from dogsearch.cli.serve import DEFAULT_PORTS
from tests.deploy.tools import BASE, DOCKERFILES, REPO, compose_model, hadolint

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def instructions(name: str) -> list[tuple[str, str]]:
    text = DOCKERFILES[name].read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage(name: str) -> list[tuple[str, str]]:
    steps = instructions(name)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_hadolint_finds_nothing() -> None:
    out = hadolint(*DOCKERFILES.values())
    findings = json.loads(out.stdout or "[]")
    assert out.returncode == 0 and findings == [], "\n".join(
        f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings) or out.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD python app.py\n")
    out = hadolint(bad)
    codes = {f["code"] for f in json.loads(out.stdout)}
    assert out.returncode != 0 and {"DL3006", "DL3008", "DL3025"} <= codes


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_cpu_build_uses_the_cpu_torch_index(name: str) -> None:
    args = [value for op, value in instructions(name) if op == "ARG"]
    assert f"TORCH_INDEX_URL={CPU_INDEX}" in args
    assert "BASE_IMAGE=python:3.11-slim-bookworm" in args
    # torch is installed from that index alone (docker/install.sh), before anything from PyPI could pull CUDA torch;
    # the rest from the lock, hashes checked, less torch's own files.
    install = (REPO / "docker" / "install.sh").read_text()
    assert '--index-url "$TORCH_INDEX_URL" -r /app/requirements.txt' in install
    assert "lock_without_torch.py /app/requirements.lock > /tmp/deps.lock" in install
    assert install.index("--index-url") < install.index("--require-hashes -r /tmp/deps.lock")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_image_runs_a_real_command_as_a_non_root_user(name: str) -> None:
    stage = dict(final_stage(name))  # the last of each instruction wins, as in Docker
    cmd = json.loads(stage["CMD"])
    assert cmd[0] == "dogsearch"
    args = parser().parse_args(cmd[1:])  # raises SystemExit on flags the CLI doesn't have
    if name == "worker":
        assert args.command == "worker"
        # the node name the compose healthcheck pings
        ping = " ".join(compose_model(BASE)["services"]["worker"]["healthcheck"]["test"])
        assert args.name == "worker@%h" and '-d "worker@$$(hostname)"' in ping
        assert '-d \\"worker@$(hostname)\\"' in stage["HEALTHCHECK"]  # the image's own, for docker run
    else:
        assert (args.command, args.service, args.host) == ("serve", name, "0.0.0.0")
        assert args.port == DEFAULT_PORTS[name] == int(stage["EXPOSE"])
        assert f"http://127.0.0.1:{args.port}/readyz" in stage["HEALTHCHECK"]
    assert re.fullmatch(r"\d+:\d+", stage["USER"]) and not stage["USER"].startswith("0:")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_everything_copied_from_the_context_exists_and_is_not_dockerignored(name: str) -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for op, value in instructions(name):
        if op != "COPY" or value.startswith("--from"):
            continue
        *sources, _ = shlex.split(value)
        for source in sources:
            assert (REPO / source).exists(), f"{name}: COPY {source}: not in the repository"
            assert source.rstrip("/") not in ignored and source.split("/")[0] not in ignored, source
