"""The lock files (make lock): every package pinned with its files' hashes, in step with pyproject.toml's floors and
requirements.txt's torch, the test lock at the service lock's very versions, and installed only by hash (make setup,
the images)."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.tools import REPO

LOCK = REPO / "requirements.lock"
TEST_LOCK = REPO / "requirements-test.lock"
NODEPS_LOCK = REPO / "requirements-nodeps.lock"
TORCH_OWN = re.compile(r"(torch|torchvision|triton|nvidia-.+|cuda-.+)")


def entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile lock."""
    found: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", text):
        first = block.split("\n", 1)[0]
        if first.startswith("#") or not first.strip():
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+) \\", first)
        assert match, f"not pinned with hashes: {first!r}"
        found[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("path", [LOCK, TEST_LOCK, NODEPS_LOCK], ids=lambda p: p.name)
def test_every_package_is_pinned_with_hashes(path) -> None:
    locked = entries(path.read_text())
    assert locked
    assert all(hashes for _, hashes in locked.values()), [name for name, (_, h) in locked.items() if not h]


@pytest.mark.parametrize(("path", "extras"), [(LOCK, ()), (TEST_LOCK, ("test",))], ids=["service", "test"])
def test_the_lock_meets_every_requirement(path, extras) -> None:
    # A floor raised or a dependency added without `make lock` fails here.
    locked = entries(path.read_text())
    wanted = [*project()["dependencies"], *(r for extra in extras for r in project()["optional-dependencies"][extra])]
    wanted += [line for line in (REPO / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    for line in wanted:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in {path.name}: run make lock"
        assert req.specifier.contains(locked[name][0], prereleases=True), f"{path.name}: {name}=={locked[name][0]}, " \
                                                                            f"wants {req}: run make lock"


def test_the_test_lock_holds_the_service_lock_as_it_is() -> None:
    service, test = entries(LOCK.read_text()), entries(TEST_LOCK.read_text())
    assert {name: service[name][0] for name in service} == {name: test[name][0] for name in service}


def test_the_images_lock_drops_torchs_own_files_only() -> None:
    out = subprocess.run([sys.executable, REPO / "docker" / "lock_without_torch.py", LOCK], capture_output=True,
                         text=True, check=True)
    kept, full = entries(out.stdout), entries(LOCK.read_text())
    assert {"torch", "torchvision"} <= set(full) - set(kept)
    assert not any(TORCH_OWN.fullmatch(name) for name in kept)
    assert kept == {name: entry for name, entry in full.items() if not TORCH_OWN.fullmatch(name)}


def _setup_recipe() -> str:
    return (REPO / "Makefile").read_text().split("$(STAMP): ", 1)[1].split("\n\n", 1)[0]


def test_make_setup_installs_by_hash_only() -> None:
    installs = [line.strip() for line in _setup_recipe().splitlines() if "pip install" in line]
    by_hash = re.compile(r"--require-hashes -r (requirements|\$\(VENV\)/pip\.lock$)")
    assert installs and all(by_hash.search(line) or line.endswith("--no-deps --no-build-isolation -e .")
                            for line in installs), installs


def test_make_setup_takes_the_test_locks_own_pip_with_its_hashes_first() -> None:
    # the pip venv bundles (23.x) refuses a hash-checked install whose packages are asked for with an extra once a
    # newer release is out; the recipe's sed cuts the lock's pip entry out for the first install
    [sed] = [line.strip() for line in _setup_recipe().splitlines() if line.strip().startswith("sed ")]
    script = re.fullmatch(r"sed -n '(.+)' requirements-test\.lock > \$\(VENV\)/pip\.lock", sed)[1].replace("$$", "$")
    out = subprocess.run(["sed", "-n", script, str(TEST_LOCK)], capture_output=True, text=True, check=True).stdout
    assert entries(out) == {"pip": entries(TEST_LOCK.read_text())["pip"]}
