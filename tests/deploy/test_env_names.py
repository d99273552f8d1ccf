"""Every setting named in the compose files and .env.example is one the service's pydantic-settings classes
read: a renamed or misspelt setting fails here instead of being silently ignored in a container."""
from __future__ import annotations

import os
import re

from pydantic_settings import BaseSettings

from dogsearch.cli.common import ClientSettings
from dogsearch.core.settings import env_names
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.embedder.settings import EmbedderSettings
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.pose.settings import PoseSettings
from dogsearch.services.search.settings import SearchSettings
from dogsearch.services.server import ServerSettings
from tests.deploy.tools import BASE, ENV_EXAMPLE, GPU, REPO, compose_model

# Which settings classes each container builds (the workers store photos as the gateway does).
READS: dict[str, tuple[type[BaseSettings], ...]] = {
    "gateway": (GatewaySettings, JobsSettings, ServerSettings),
    "worker": (JobsSettings, GatewaySettings),
    "embedder": (EmbedderSettings, ServerSettings),
    "pose": (PoseSettings, ServerSettings),
    "search": (SearchSettings, ServerSettings),
}
DEPLOY_ONLY = "DEPLOY_"  # compose's own knobs (.env.example), never passed to a settings class


def example_names() -> set[str]:
    # Commented-out examples count too: they are what users uncomment.
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def test_the_name_reader_knows_prefixes_and_aliases() -> None:
    names = env_names(JobsSettings)
    assert "DOGSEARCH_BROKER_URL" in names and "DOGSEARCH_JOBS_BATCH_SIZE" in names
    assert "DOGSEARCH_JOBS_BROKER_URL" not in names  # an alias replaces the prefixed name
    assert "DOGSEARCH_SEARCH_QDRANT_URL" in env_names(SearchSettings)
    assert "DOGSEARCH_SEARCH_LOG_LEVEL" in env_names(SearchSettings)  # fields of the shared base


def test_compose_environment_names_exist_in_the_settings() -> None:
    for files in ((BASE,), (BASE, GPU)):
        services = compose_model(*files)["services"]
        for service, classes in READS.items():
            known = set().union(*(env_names(cls) for cls in classes))
            unknown = set(services[service].get("environment") or {}) - known
            assert not unknown, f"{service} in {[f.name for f in files]}: not settings of {classes}: {unknown}"


def test_env_example_names_exist_in_the_settings_or_are_compose_knobs() -> None:
    known = set().union(*(env_names(cls) for classes in READS.values() for cls in classes))
    names = example_names()
    assert len(names) > 20
    unknown = {n for n in names if not n.startswith(DEPLOY_ONLY)} - known
    assert not unknown, f".env.example names no settings class reads: {sorted(unknown)}"
    compose_text = BASE.read_text() + GPU.read_text()
    unused = {n for n in names if n.startswith(DEPLOY_ONLY) and f"${{{n}" not in compose_text}
    assert not unused, f".env.example has compose knobs the compose files don't use: {sorted(unused)}"


def test_env_example_values_are_valid_settings(monkeypatch) -> None:
    # The example's values themselves pass each class's validation (a bad default here would stop a container).
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            monkeypatch.setenv(*match.groups())
    for classes in READS.values():
        for cls in classes:
            cls()


def test_the_example_deploys_the_models_the_docs_measure() -> None:
    """A deployment copied from .env.example runs the shipped default models: the example may leave the model and
    the detector unset, never set them to others (it once set the ImageNet CNN and the saliency detector, from
    before either default existed)."""
    text = ENV_EXAMPLE.read_text()
    set_here = dict(re.findall(r"^(DOGSEARCH_(?:EMBEDDER|POSE)_(?:MODEL|DETECTOR))=(.*)$", text, flags=re.MULTILINE))
    defaults = {f"{cls.model_config['env_prefix']}{field}".upper(): cls.model_fields[field].default
                for cls in (EmbedderSettings, PoseSettings) for field in ("model", "detector")}
    assert set(set_here) <= set(defaults) and "DOGSEARCH_POSE_MODEL" in set_here  # the reader finds what is set
    for name, value in set_here.items():
        assert value == defaults[name], f".env.example sets {name}={value}, not the default {defaults[name]}"


# What .env.example sets otherwise than the settings' defaults, on purpose, and why.
DELIBERATE = {
    "DOGSEARCH_JOBS_ALLOWED_ROOTS": "compose mounts the imports volume there",
    "DOGSEARCH_POSE_PRELOAD": "a container loads its model at start, so /readyz answers for it",
    "DOGSEARCH_SEARCH_QDRANT_SHARD_NUMBER": "one Qdrant node in compose: said, not left to the server",
    "DOGSEARCH_SEARCH_QDRANT_REPLICATION_FACTOR": "likewise",
    "DOGSEARCH_SEARCH_QDRANT_WRITE_CONSISTENCY_FACTOR": "likewise",
}


def test_the_example_sets_the_defaults_but_where_a_deployment_differs_on_purpose(monkeypatch) -> None:
    """A value written into the example drifts when the default moves: it once kept the decode limit at 128 MiB,
    which refused every iPhone photo since the 15, after the default went to 192."""
    for name in list(os.environ):
        if name.startswith("DOGSEARCH_"):
            monkeypatch.delenv(name)
    defaults = {cls: cls() for classes in READS.values() for cls in classes}
    differ = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^(DOGSEARCH_[A-Z0-9_]*)=(.*)$", line)
        if not match:
            continue
        name, value = match.groups()
        with monkeypatch.context() as env:
            env.setenv(name, value)
            for cls, default in defaults.items():
                if name in env_names(cls):
                    changed = {f for f, v in cls().model_dump().items() if v != default.model_dump()[f]}
                    if changed:
                        differ[name] = value
    assert set(differ) == set(DELIBERATE), f"set otherwise than the defaults: {differ}"


# DOGSEARCH_ names the docs give that no settings class reads, and the file that reads each.
NOT_SETTINGS = {"DOGSEARCH_URL": "web/vite.config.ts", "DOGSEARCH_E2E_REQUIRE_POSE": "web/e2e/app.e2e.ts"}


def test_the_names_the_docs_give_are_settings() -> None:
    """Every DOGSEARCH_ name in README.md and docs/*.md, and every name of README's settings table (`MODEL` in the
    `DOGSEARCH_EMBEDDER_` row), is one a settings class reads: a copied misspelling stops a server, and is ignored
    by a bench or an eval. A name ending in _ is a prefix some setting has."""
    known = set().union(*(env_names(cls) for classes in READS.values() for cls in classes), env_names(ClientSettings))
    for name, reader in NOT_SETTINGS.items():
        assert name not in known and name in (REPO / reader).read_text(), f"{name}: not read by {reader}, or a setting"
    known |= set(NOT_SETTINGS)
    wrong = []
    for doc in (REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))):
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            names = re.findall(r"DOGSEARCH_[A-Z0-9_]*", line)
            if row := re.match(r"\|\s*`(DOGSEARCH_[A-Z0-9_]*_)`\s*\|(.*)", line):
                names += [n if n.startswith("DOGSEARCH_") else row[1] + n
                          for n in re.findall(r"`([A-Z][A-Z0-9_]+)`", row[2])]
            wrong += [f"{doc.relative_to(REPO)}:{number}: {name}" for name in names
                      if name not in known and not (name.endswith("_") and any(k.startswith(name) for k in known))]
    assert not wrong, "names no settings class reads:\n" + "\n".join(wrong)
