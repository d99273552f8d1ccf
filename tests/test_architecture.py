"""The package's folders are its architecture, and its imports keep to it: each sub-package of dogsearch imports
only the sub-packages listed for it below (dependencies point one way: no loops), and the domain imports no web
framework. Lazy imports inside functions count too."""
from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "dogsearch"
# What each sub-package may import from dogsearch, besides itself. Read upwards: the domain core at the bottom,
# the services on it, the commands on top (docs/architecture.md draws it).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "inference": {"core"},
    "models": {"core", "inference"},
    "pose": {"core", "inference", "models"},
    "search": {"core"},
    "gallery": {"core", "search"},
    "jobs": {"core", "gallery"},
    "watches": {"core", "search", "gallery"},
    "services": {"core", "inference", "models", "pose", "search", "gallery", "jobs", "watches"},
    "eval": {"core", "inference", "models", "pose", "search", "gallery", "services"},
    "training": {"core", "inference", "models", "pose", "gallery", "eval"},
    "bench": {"core", "inference", "models", "pose", "search", "gallery", "jobs", "watches", "services", "eval"},
    "cli": {"core", "inference", "models", "pose", "search", "gallery", "jobs", "watches", "services", "eval",
            "training", "bench"},
}
DOMAIN = ("core", "inference", "models", "pose", "search", "gallery", "jobs", "watches")
WEB = ("fastapi", "starlette", "uvicorn", "httpx")


def imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the source, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str, source: str, where: str) -> list[str]:
    out = []
    for line, module in imports(source):
        parts = module.split(".")
        if parts[0] == "dogsearch" and len(parts) > 1 and parts[1] != package and parts[1] in ALLOWED:
            if parts[1] not in ALLOWED[package]:
                out.append(f"{where}:{line}: {package} imports {module}")
        if package in DOMAIN and parts[0] in WEB:
            out.append(f"{where}:{line}: the domain ({package}) imports {module}")
    return out


def test_every_sub_package_is_in_the_table():
    found = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert found == set(ALLOWED), "a new sub-package needs its place in ALLOWED (and in docs/architecture.md)"


def test_the_allowed_dependencies_have_no_loop():
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(dep == goal or (dep not in seen and reaches(dep, goal, seen | {dep})) for dep in ALLOWED[start])

    assert not [p for p in ALLOWED if reaches(p, p, set())]


def test_imports_keep_to_the_layers():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) > 1:
            found += violations(rel.parts[0], path.read_text(), str(path.relative_to(REPO)))
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("package", "source", "bad"), [
    ("gallery", "from dogsearch.services.gateway.settings import GatewaySettings", True),
    ("jobs", "def f():\n    import dogsearch.services.worker", True),
    ("search", "from fastapi import HTTPException", True),
    ("gallery", "from dogsearch.search.contract import Point", False),
    ("services", "from fastapi import FastAPI\nfrom dogsearch.gallery import gallery", False),
])
def test_the_check_finds_what_it_should(package, source, bad):
    assert bool(violations(package, source, "x.py")) is bad
