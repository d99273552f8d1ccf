"""A real webhook receiver on loopback for the tests: records every POST (headers and exact body) and answers the
statuses it is given in turn (then 200, or from when it recovers)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def recover(self) -> None:
        """Answers 200 from now on (the webhook is back up)."""
        with self.lock:
            self.statuses.clear()

    async def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[dict[str, str], bytes]]:
        """Waits on the event loop (the gateway under test sends from it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {n} deliveries, got {len(self.received)}")


def signed(secret: str, body: bytes) -> str:
    """What X-Dogsearch-Signature must say for `body`, computed here independently of the server's code."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
