"""Webhooks, attacked by their receiver: a real `dogsearch serve` whose watches POST to receivers on loopback that
the attacker runs."""
from __future__ import annotations

import json
import socketserver
import threading
import time

import httpx

from dogsearch.models.calibration import Calibration, path_for
from dogsearch.models.efficientnet import PACKAGE_MODEL_ID
from tests.gateway.helpers import DARK_RED, RED
from tests.images import solid
from tests.watches.receiver import Receiver

# every likeness a sure match: what is tested is the delivery, not the verdict
CERTAIN = Calibration(PACKAGE_MODEL_ID, "isotonic", {"x": [0.0, 1.0], "y": [0.99, 1.0]}, 0.5)


class Trickler:
    """A webhook that answers 200 with a long body, one byte every 0.2 s: each read within any per-read timeout."""

    def __init__(self) -> None:
        stop = self.stop = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)
                try:
                    self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    while not stop.wait(0.2):
                        self.request.sendall(b"x")
                except OSError:  # the sender gave up
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Trickler:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(read, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := read()):
            return value
        time.sleep(0.2)
    raise AssertionError(f"nothing after {timeout} s")


def test_a_webhook_that_trickles_its_answer_fails_its_attempt_in_time_and_holds_up_no_other(start_server, tmp_path):
    """httpx's timeout bounds each read: a receiver sending a byte every 0.2 s held its attempt for as long as it
    liked (65536 bytes at 4.9 s each: 89 hours by default), and every delivery of every watch waited behind it. Now
    an attempt fails at WEBHOOK_TIMEOUT_S, whatever the receiver does, and the others are sent."""
    calibration = path_for(PACKAGE_MODEL_ID, tmp_path / "models")
    calibration.parent.mkdir(parents=True)
    calibration.write_text(json.dumps(CERTAIN.to_json()))
    server = start_server(env={"DOGSEARCH_GATEWAY_CALIBRATION_DIR": str(tmp_path / "models"),
                               "DOGSEARCH_GATEWAY_WEBHOOK_ALLOW_PRIVATE": "true",
                               "DOGSEARCH_GATEWAY_WEBHOOK_TIMEOUT_S": "1",
                               "DOGSEARCH_GATEWAY_WEBHOOK_MAX_ATTEMPTS": "1"})
    with httpx.Client(base_url=server.url, timeout=60) as http, Trickler() as trickler, Receiver() as receiver:
        def add(color, status: str, size=(64, 48)) -> str:
            added = http.post("/v1/dogs", files={"image": ("d.jpg", solid(color, size))}, data={"status": status})
            assert added.status_code == 201, added.text
            return added.json()["id"]

        def watch(dog: str, url: str) -> str:
            made = http.post("/v1/watches", json={"dog_id": dog, "webhook_url": url})
            assert made.status_code == 201, made.text
            return made.json()["id"]

        def delivery(watch_id: str) -> dict | None:
            items = http.get(f"/v1/watches/{watch_id}/matches").json()["items"]
            return items and items[0]["delivery"]["state"] not in ("pending", "sending") and items[0]["delivery"]

        slow = watch(add(RED, "lost"), trickler.url)
        add(DARK_RED, "found")
        start = time.monotonic()
        failed = wait_for(lambda: delivery(slow), 15)
        assert time.monotonic() - start < 10
        assert failed["state"] == "failed" and failed["history"][0]["error"] == "no answer within 1 s", failed
        # another watch's match is sent while the trickler keeps trickling
        watch(add(RED, "lost", (80, 60)), receiver.url)
        add(DARK_RED, "found", (80, 60))
        assert wait_for(lambda: receiver.received, 15)
