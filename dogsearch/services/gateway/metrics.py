"""The gateway's own Prometheus metrics, read from the stores at each scrape: what the bulk jobs did, whichever
worker did it (the workers have no HTTP port of their own to scrape)."""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from dogsearch.jobs.store import COUNTERS, JobStore

log = logging.getLogger("dogsearch.gateway")


class JobPhotos(Collector):
    """`dogsearch_job_photos_total{outcome}`: every bulk job's files by outcome (indexed, near_duplicate, duplicate,
    already_stored, failed), each file counted once however often its batch ran, summed over all jobs and workers
    since the job store was made (Redis beside the broker, or the data folder's SQLite file)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            totals = self.store.outcome_totals()
        except Exception as exc:  # the broker down: the other metrics are needed most now, so they still come
            log.warning("job totals not read for /metrics", extra={"error": str(exc)})
            return
        family = CounterMetricFamily("dogsearch_job_photos", "bulk jobs' files by outcome, each counted once",
                                     labels=["outcome"])
        for outcome in COUNTERS:  # every outcome, 0 included: a rate() needs the series before its first file
            family.add_metric([outcome], totals.get(outcome, 0))
        yield family
