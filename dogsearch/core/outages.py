"""Outages waited out in the Celery task that meets them, holding its message (a job's batch, a check of new dogs
against the watches). A task never asks the broker for a retry while the broker is what is down: Celery drops a
message whose retry it cannot publish (a failed publish in Task.retry is a Reject(requeue=False)). One whose services
are down waits for them in its worker's slot, trying again with jittered backoff while it may hold its message, then
sends itself again as a new message that waits on; past its retry window it gives up, the way its task says."""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import Reject
from celery.worker import request as worker_request
from celery.worker import state as worker_state
from vine import Thenable

from dogsearch.core.errors import TimedOut, Unavailable

log = logging.getLogger("dogsearch.broker")
T = TypeVar("T")

# The longest wait between two tries of a task whose services are down: how soon it sees them back.
RETRY_MAX_DELAY_S = 10


def retry_delay(attempt: int) -> float:
    """Seconds before try `attempt` + 1 of a task whose services are down: doubling up to RETRY_MAX_DELAY_S, each
    a random half to all of it, so that the tasks waiting on one service do not all call it at the same moment."""
    return min(2**attempt, RETRY_MAX_DELAY_S) * random.uniform(0.5, 1)


def stopping() -> bool:
    """The worker shuts down (warm: it waits for its tasks), so a task stops waiting and hands its message on."""
    return worker_state.should_stop is not None and worker_state.should_stop is not False  # EX_OK is 0


class Broker:
    """The Redis a worker's tasks come from. `visibility_timeout_s`: how long it lets a task hold its message;
    `ping` raises one of `down` when Redis does not answer, as the tasks' steps that meet it down do."""

    def __init__(self, visibility_timeout_s: int, ping: Callable[[], object],
                 down: tuple[type[BaseException], ...]) -> None:
        self.visibility_timeout_s, self.ping, self.down = visibility_timeout_s, ping, down

    def lease_end(self) -> float:
        """Until when a task may wait holding its message: past the visibility timeout Redis would hand the message
        to another worker as well."""
        return time.monotonic() + self.visibility_timeout_s / 2

    def through_outage(self, step: Callable[[], T], until: float, also: tuple[type[BaseException], ...] = ()) -> T:
        """step(), run again once Redis answers if it met Redis down, or raised one of `also` (each step may run
        twice: the tasks count nothing twice). Redis down past `until`: the message is rejected for Redis to hand
        out again, at once if it answers by then, else (the reject cannot reach it) after the visibility timeout,
        from its unacked copy."""
        while True:
            try:
                return step()
            except (*self.down, *also) as exc:
                log.warning("the broker (Redis) does not answer: waiting for it (%s%s)", exc,
                            f": {exc.__cause__}" if exc.__cause__ else "")
                while not self._answers():
                    if time.monotonic() >= until or stopping():
                        raise Reject(str(exc), requeue=True) from exc
                    time.sleep(1)

    def until_served(self, run: Callable[[], T], until: float, down_since: float | None, window_s: float,
                     give_up: Callable[[BaseException], object],
                     send_again: Callable[[float, float], object]) -> T | None:
        """run()'s result, through Redis's outages and its services' (Unavailable, TimedOut: down or busy, a
        redeploy): tried again after retry_delay while this delivery may hold its message (its slot waits too: no
        other task is taken to fail meanwhile), then `send_again(countdown, down_since)` sends a new message, with a
        lease of its own, to wait on. Once they have been down `window_s` since `down_since` (found down by an
        earlier delivery, or now): `give_up(error)`. None when it was sent again or given up."""
        attempt = 0
        while True:
            try:
                return self.through_outage(run, until)
            except (Unavailable, TimedOut) as exc:
                down_since = down_since or time.time()  # wall clock: a later delivery may run on another machine
                if time.time() - down_since >= window_s:
                    self.through_outage(lambda e=exc: give_up(e), until)
                    return None
                if attempt == 0:  # once a delivery: an operator sees why a job stands still (it said nothing)
                    log.warning("a service does not answer: waiting for it, for up to %.0f s more (%s)",
                                window_s - (time.time() - down_since), exc)
                delay = retry_delay(attempt)
                attempt += 1
                if time.monotonic() + delay < until and not stopping():
                    time.sleep(delay)
                    continue
                self.through_outage(lambda d=delay, since=down_since: send_again(d, since), until)
                return None

    def _answers(self) -> bool:
        try:
            self.ping()
        except self.down:
            return False
        return True


class _SettledOnceBack(worker_request.Request):
    """Celery acknowledges or rejects a task's message from its worker's consumer, which waits for Redis to come back
    when it sees it gone; one it sends as Redis dies, before it has seen it, it logs ("Couldn't ack", "Couldn't
    reject") and drops: a task done would run again after the visibility timeout, one rejected to be handed out
    again would wait that long, and one rejected for good would run again. Each is sent again, from a thread of its
    own, once Redis answers (within the worker's hold on the message)."""

    def acknowledge(self) -> None:
        if self.acknowledged:
            return
        # Celery's own path (the consumer's), which also restores its prefetch after a reconnection
        sent = self._on_ack(worker_request.logger, self._connection_errors)
        self.acknowledged = True
        self._again_unless_settled(sent, "acknowledgement", self.message.ack)

    def reject(self, requeue: bool = False) -> None:
        if self.acknowledged:
            return
        sent = self._on_reject(worker_request.logger, self._connection_errors, requeue)
        self.acknowledged = True
        self.send_event("task-rejected", requeue=requeue)
        self._again_unless_settled(sent, "rejection", lambda: self.message.reject(requeue=requeue))

    def _again_unless_settled(self, sent: object, what: str, settle: Callable[[], object]) -> None:
        """Once the consumer tried (`sent` fulfilled), `settle()` sent again unless its try reached Redis."""
        def tried(*_: Any) -> None:
            if not self.message.acknowledged:
                threading.Thread(target=self._settle_once_back, args=(what, settle), daemon=True).start()

        if isinstance(sent, Thenable):
            sent.then(tried)

    def _settle_once_back(self, what: str, settle: Callable[[], object]) -> None:
        broker: Broker = self.task.app.dogsearch_broker
        try:
            broker.through_outage(lambda: self.message.acknowledged or settle(), broker.lease_end(),
                                  also=self._connection_errors)
        except Reject:
            log.warning("task %s: its %s did not reach Redis: its message is handed out again after the visibility "
                        "timeout", self.task_name, what)
            return
        log.info("task %s: %s sent once Redis answered again", self.task_name, what)


class BrokerTask(Task):
    """The tasks of an app whose `dogsearch_broker` is their Broker: a task's acknowledgement or rejection dropped as
    Redis died is sent again once it answers."""

    Request = _SettledOnceBack
