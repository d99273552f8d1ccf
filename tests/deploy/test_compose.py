"""docker-compose.yml and the GPU overlay: valid to the Compose spec and to Compose itself, and shaped as the
deployment needs (healthchecks, restarts, limits, volumes, scalable workers, GPUs only where models run)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import BASE, ENV_EXAMPLE, GPU, check_jsonschema, compose, compose_model

OURS = ("gateway", "embedder", "pose", "search", "worker")
OFFICIAL = {"redis": "redis:", "qdrant": "qdrant/qdrant:"}


def test_both_files_match_the_compose_spec_schema() -> None:
    out = check_jsonschema(BASE, GPU)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("files", [(BASE,), (BASE, GPU)], ids=["base", "base+gpu"])
@pytest.mark.parametrize("env_file", [None, ENV_EXAMPLE], ids=["defaults", "env-example"])
def test_compose_accepts_the_project(files: tuple[Path, ...], env_file: Path | None) -> None:
    out = compose(*files, env_file=env_file)
    assert out.returncode == 0, out.stderr


def test_the_validators_do_reject_a_broken_file(tmp_path: Path) -> None:
    # So that the two checks above can fail: a misspelt key and a dependency on a service that isn't there.
    misspelt = tmp_path / "misspelt.yml"
    misspelt.write_text(BASE.read_text().replace("    restart: unless-stopped\n", "    restrat: unless-stopped\n", 1))
    assert check_jsonschema(misspelt).returncode != 0
    assert compose(misspelt).returncode != 0
    dangling = tmp_path / "dangling.yml"
    dangling.write_text(BASE.read_text().replace("      qdrant:\n        condition", "      qdrnt:\n        condition"))
    assert compose(dangling).returncode != 0


@pytest.fixture(scope="module")
def base() -> dict:
    return compose_model(BASE, env_file=ENV_EXAMPLE)


@pytest.fixture(scope="module")
def gpu() -> dict:
    return compose_model(BASE, GPU, env_file=ENV_EXAMPLE)


def test_every_service_has_a_healthcheck_a_restart_policy_and_limits(base: dict) -> None:
    services = base["services"]
    assert set(services) == {*OURS, *OFFICIAL}
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and int(limits["memory"]) > 0, name
    for name in ("gateway", "embedder", "pose", "search"):
        assert any("/readyz" in part for part in services[name]["healthcheck"]["test"]), name
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])


def test_our_images_are_built_from_their_dockerfiles_and_the_others_are_official(base: dict) -> None:
    for name in OURS:
        build = base["services"][name]["build"]
        assert build["dockerfile"] == f"docker/{name}.Dockerfile"
        assert "args" not in build  # CPU: the Dockerfiles' defaults (python slim, the CPU torch index)
    for name, prefix in OFFICIAL.items():
        service = base["services"][name]
        assert service["image"].startswith(prefix) and "build" not in service


def test_services_find_each_other_and_keep_their_data_on_named_volumes(base: dict) -> None:
    services = base["services"]

    def mounts(name: str) -> dict[str, str]:
        return {v["target"]: v["source"] for v in services[name]["volumes"] if v["type"] == "volume"}

    assert set(base["volumes"]) >= {"photos", "jobs", "models", "qdrant-storage", "redis-data"}
    for name in ("gateway", "worker"):  # workers write photos where the gateway serves them from
        assert mounts(name)["/data/photos"] == "photos" and mounts(name)["/data/jobs"] == "jobs"
        env = services[name]["environment"]
        assert env["DOGSEARCH_GATEWAY_EMBEDDER_URL"] == "http://embedder:8001"
        assert env["DOGSEARCH_GATEWAY_SEARCH_URL"] == "http://search:8002"
        assert env["DOGSEARCH_BROKER_URL"].startswith("redis://redis:6379/")
    assert services["gateway"]["environment"]["DOGSEARCH_GATEWAY_POSE_URL"] == "http://pose:8003"
    assert mounts("embedder")["/models"] == mounts("pose")["/models"] == "models"
    assert services["search"]["environment"]["DOGSEARCH_SEARCH_QDRANT_URL"] == "http://qdrant:6333"
    assert mounts("qdrant")["/qdrant/storage"] == "qdrant-storage"
    assert mounts("redis")["/data"] == "redis-data"
    assert "--appendonly" in services["redis"]["command"]
    # Only the gateway is published; everything else talks on the project network.
    assert [name for name, s in services.items() if s.get("ports")] == ["gateway"]
    assert services["gateway"]["depends_on"]["search"]["condition"] == "service_healthy"


def test_the_gateway_waits_for_what_its_readiness_needs_and_not_for_the_optional_pose_service(base: dict) -> None:
    # The gateway's /readyz asks the embedder and the search service, never the pose service, whose failure answers
    # "pose unavailable" (README, "Why it matches"). Waiting for pose to be healthy kept the whole API from starting
    # when the pose model could not load (a checkpoint missing from the models volume).
    depends = base["services"]["gateway"]["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == {
        "embedder": "service_healthy", "search": "service_healthy", "redis": "service_healthy",
        "pose": "service_started"}


def test_redis_is_bounded_and_never_evicts_queue_or_job_keys(base: dict) -> None:
    command = base["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    maxmemory = command[command.index("--maxmemory") + 1]
    assert maxmemory == "384mb"  # DEPLOY_REDIS_MAXMEMORY in .env.example
    limit = int(base["services"]["redis"]["deploy"]["resources"]["limits"]["memory"])
    assert int(maxmemory.removesuffix("mb")) * 1024**2 < limit  # Redis refuses writes before the kernel kills it


def test_workers_can_be_scaled(base: dict) -> None:
    worker = base["services"]["worker"]
    # --scale needs containers without a fixed name or host port.
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["deploy"]["replicas"] == 2  # DEPLOY_WORKERS in .env.example


def test_gpu_overlay_puts_the_model_services_on_nvidia_gpus(base: dict, gpu: dict) -> None:
    for name, device_setting in (("embedder", "DOGSEARCH_EMBEDDER_DEVICE"), ("pose", "DOGSEARCH_POSE_DEVICE")):
        service = gpu["services"][name]
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
        assert service["environment"][device_setting] == "cuda"
        args = service["build"]["args"]
        assert args["BASE_IMAGE"].startswith("nvidia/cuda:")
        assert "/whl/cu" in args["TORCH_INDEX_URL"]
        assert service["image"] != base["services"][name]["image"]  # CPU and CUDA images don't overwrite each other
        # The overlay adds to the base: healthcheck, volumes and wiring stay.
        assert service["healthcheck"] == base["services"][name]["healthcheck"]
        assert service["volumes"] == base["services"][name]["volumes"]
    for name in ("gateway", "search", "worker", "redis", "qdrant"):
        assert gpu["services"][name] == base["services"][name], name
    assert "reservations" not in base["services"]["embedder"]["deploy"]["resources"]


def test_the_published_gateway_requires_keys_and_the_secrets_come_from_env_only(base: dict) -> None:
    # Published on the host: without an admin key it must not start (dogsearch serve checks REQUIRE_KEYS).
    assert base["services"]["gateway"]["environment"]["DOGSEARCH_GATEWAY_REQUIRE_KEYS"] == "true"
    for name, service in base["services"].items():
        named = set(service.get("environment") or {})
        assert not {n for n in named if n.endswith(("API_KEY", "API_KEYS", "INTERNAL_KEY"))}, name
    # .env.example names them (empty: the operator makes them), and every service of ours reads the env file.
    example = ENV_EXAMPLE.read_text()
    assert "\nDOGSEARCH_GATEWAY_API_KEYS=\n" in example and "\nDOGSEARCH_INTERNAL_KEY=\n" in example
    raw = yaml.safe_load(BASE.read_text())  # `docker compose config` leaves out an optional env file not there
    for name in OURS:
        assert raw["services"][name]["env_file"][0]["path"] == ".env", name
