"""The search service's own Prometheus metrics, read from its store at each scrape."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dogsearch.search.contract import CollectionMissing, StoreError, VectorStore


class StoredPoints(Collector):
    """`dogsearch_search_points`: the entries in the collection (one a dog a photo), for capacity against what one
    machine holds (docs/scaling.md). Absent while the store is closed or does not answer; 0 before the first
    dog.

    The engine's own tally (`VectorStore.stats()`: the embedded engine's segment counts, a Qdrant server's
    collection `points_count`), not an exact count: an exact count walks every point each scrape (~74 ms at a
    million, the embedded engine's lock and the GIL held, so searches wait), this costs microseconds whatever the
    size. Approximate: a Qdrant server may count a point twice or miss it for a moment while it rebuilds segments;
    `POST /v1/points/count` is the exact figure."""

    def __init__(self, store: Callable[[], VectorStore | None]) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self.store()
        if store is None:
            return
        try:
            points = store.stats()["points"]
        except CollectionMissing:
            points = 0
        except StoreError:  # a server that does not answer: /readyz says so
            return
        yield GaugeMetricFamily("dogsearch_search_points", "entries in the vector collection (the engine's own "
                                "tally: approximate)", value=points)
