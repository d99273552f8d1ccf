"""Every service in one process: the embedded default. The gateway reaches the others over the same HTTP
contract as across processes, through httpx's ASGI transport instead of a socket."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from dogsearch.jobs.settings import JobsSettings
from dogsearch.models.detect import Detector
from dogsearch.models.dogclass import DogClassifier
from dogsearch.models.embedding import EmbeddingModel
from dogsearch.pose.pipeline import PosePipeline
from dogsearch.services.embedder.app import create_app as create_embedder
from dogsearch.services.embedder.client import EmbedderClient
from dogsearch.services.embedder.settings import EmbedderSettings
from dogsearch.services.gateway.app import create_app as create_gateway
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.layout import DataLayout
from dogsearch.services.pose.app import create_app as create_pose
from dogsearch.services.pose.client import PoseClient
from dogsearch.services.pose.settings import PoseSettings
from dogsearch.services.search.app import create_app as create_search
from dogsearch.services.search.client import SearchClient
from dogsearch.services.search.settings import SearchSettings


def create_all_in_one(
    data_dir: Path | None = None,
    *,
    embedder_settings: EmbedderSettings | None = None,
    model_factory: Callable[[], EmbeddingModel] | None = None,
    detector_factory: Callable[[], Detector] | None = None,
    classifier_factory: Callable[[], DogClassifier] | None = None,
    gateway_options: dict | None = None,
    jobs_options: dict | None = None,
    pose_settings: PoseSettings | None = None,
    pose_factory: Callable[[], PosePipeline] | None = None,
) -> FastAPI:
    """`data_dir` holds vectors/, photos/ and jobs/ (DataLayout); without it each service's own setting (or default)
    applies."""
    layout = DataLayout(data_dir) if data_dir else None
    search_settings = SearchSettings(data_dir=layout.vectors) if layout else SearchSettings()
    options = dict(gateway_options or {})
    if layout:
        options["data_dir"] = layout.photos
    gateway_settings = GatewaySettings(**options)
    jobs_settings = JobsSettings(**({"data_dir": layout.jobs} if layout else {}) | (jobs_options or {}))

    embedder_app = create_embedder(embedder_settings, model_factory=model_factory, detector_factory=detector_factory,
                                   classifier_factory=classifier_factory)
    search_app = create_search(search_settings)
    pose_app = create_pose(pose_settings, pipeline_factory=pose_factory)  # loads its models on first use
    # In-process calls carry the internal key too: each service checks it whoever calls.
    timeout, token = gateway_settings.upstream_timeout_s, gateway_settings.internal_secret
    gateway = create_gateway(
        gateway_settings,
        embedder=EmbedderClient("http://embedder", app=embedder_app, timeout=timeout, token=token),
        search=SearchClient("http://search", app=search_app, timeout=timeout, token=token),
        pose=PoseClient("http://pose", app=pose_app, timeout=timeout, token=token),
        sub_apps=(embedder_app, search_app, pose_app),
        jobs_settings=jobs_settings,
    )
    if jobs_settings.broker_url:
        # Celery workers are other processes: they reach this process's embedder and search services over HTTP
        # (DOGSEARCH_GATEWAY_EMBEDDER_URL=<url>/internal/embedder, DOGSEARCH_GATEWAY_SEARCH_URL=<url>/internal/search)
        # with the internal key (or an admin key: the gateway's Access lets nobody else through).
        gateway.mount("/internal/embedder", embedder_app)
        gateway.mount("/internal/search", search_app)
    return gateway
