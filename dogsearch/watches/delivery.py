"""Sending matches to their webhooks: a POST of the match's JSON, signed with the watch's secret
(`X-Dogsearch-Signature: sha256=<hex HMAC-SHA256 of the body>`), retried with exponential backoff up to a bounded
number of attempts, each recorded. The deliveries wait in the store (an outbox written with their match), so a
restart or a crash loses none: whichever process runs a Deliverer sends them."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from dogsearch.watches.store import Claimed, WatchStore
from dogsearch.watches.targets import Target, WebhookRefused, resolve

# (where to, the body, the headers, timeout s) -> (HTTP status or None, why it failed or None). The HTTP client
# lives in the services (services/gateway/webhooks.py); it must not follow redirects and must read little.
Send = Callable[[Target, bytes, Mapping[str, str], float], Awaitable[tuple[int | None, str | None]]]
log = logging.getLogger("dogsearch.watches")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(claimed: Claimed) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": "dogsearch-webhook",
            "X-Dogsearch-Signature": signature(claimed.secret, claimed.body),
            # the same on every attempt: a receiver that saw it already can ignore it
            "X-Dogsearch-Delivery": f"{claimed.watch}:{claimed.dog}",
            "X-Dogsearch-Attempt": str(claimed.attempt)}


class Deliverer:
    def __init__(self, store: WatchStore, send: Send, *, allow_private: bool = False, timeout_s: float = 5.0,
                 max_attempts: int = 5, backoff_s: float = 2.0, max_backoff_s: float = 600.0, poll_s: float = 1.0,
                 concurrency: int = 8) -> None:
        self.store, self.send, self.allow_private = store, send, allow_private
        self.timeout_s, self.max_attempts = timeout_s, max_attempts
        self.backoff_s, self.max_backoff_s, self.poll_s = backoff_s, max_backoff_s, poll_s
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New deliveries are waiting (called from this process's event loop)."""
        self._wake.set()

    def retry_at(self, attempt: int) -> float | None:
        """When attempt `attempt` (from 1), having failed, is tried again; None: it was the last."""
        if attempt >= self.max_attempts:
            return None
        return time.time() + min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)

    async def run(self) -> None:
        """Sends what is due until cancelled; wakes when told, else every poll_s (other processes record matches
        too)."""
        while True:
            try:
                await self.deliver_due()
            except Exception:  # the store busy or gone for a moment: the next round
                log.warning("sending webhook deliveries failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def deliver_due(self, limit: int = 64) -> int:
        """Sends the deliveries due now (at most `limit`); how many were tried."""
        due = await asyncio.to_thread(self.store.due, limit)
        await asyncio.gather(*(self.deliver(watch, dog) for watch, dog in due))
        return len(due)

    async def deliver(self, watch_id: str, dog_id: str) -> None:
        """One attempt at one delivery, if it is still due and no other sender took it."""
        async with self._slots:
            lease = self.timeout_s * 3 + 10  # past any attempt's own time: a live sender never loses it
            claimed = await asyncio.to_thread(self.store.claim, watch_id, dog_id, lease)
            if claimed is None:
                return
            try:
                target = await asyncio.to_thread(resolve, claimed.url, self.allow_private)
                status, error = await self.send(target, claimed.body, headers_for(claimed), self.timeout_s)
            except WebhookRefused as exc:  # the name now resolves somewhere it may not go
                status, error = None, exc.reason
            ok = status is not None and 200 <= status < 300
            if not ok and error is None:
                error = f"HTTP {status}"
            retry = None if ok else self.retry_at(claimed.attempt)
            if not ok:
                log.info("webhook delivery %s:%s attempt %d failed: %s", watch_id, dog_id, claimed.attempt, error)
            await asyncio.to_thread(self.store.finish, claimed, status, None if ok else error, ok, retry)
