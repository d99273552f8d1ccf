from __future__ import annotations

import shutil

import pytest

from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.gateway.app import create_app
from dogsearch.services.gateway.settings import GatewaySettings
from tests.conftest import SAMPLES
from tests.fakes import ColorGridModel, serving
from tests.jobs.servers import REDIS_URL, Backends, RedisServer, redis_db


@pytest.fixture
def redis_clean():
    client = redis_db()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def photos(tmp_path):
    """A copy of the sample gallery (40 photos, sub-folders are breeds) that tests may add to."""
    root = tmp_path / "in"
    shutil.copytree(SAMPLES / "gallery", root / "gallery")
    return root / "gallery"


@pytest.fixture
def model() -> ColorGridModel:
    return ColorGridModel()


@pytest.fixture
def backends(tmp_path, model):
    with Backends(tmp_path, model) as b:
        yield b


@pytest.fixture
def broker(tmp_path):
    """A redis-server of the test's own, which it may kill and start again."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(tmp_path, backends, redis_clean):
    """(jobs settings, gateway settings) of the Celery mode: the gateway and the workers see the same."""
    jobs = JobsSettings(broker_url=REDIS_URL, data_dir=tmp_path / "jobs", allowed_roots=[tmp_path / "in"],
                        batch_size=8, visibility_timeout_s=3)
    gateway = GatewaySettings(data_dir=tmp_path / "photos", embedder_url=backends.embedder.url,
                              search_url=backends.search.url)
    return jobs, gateway


@pytest.fixture
async def celery_gateway(settings):
    """The gateway in Celery mode (its jobs go to Redis), over ASGI; the test brings the workers."""
    jobs, gateway = settings
    app = create_app(gateway, jobs_settings=jobs)
    async with serving(app) as client:
        yield client
