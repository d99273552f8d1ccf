"""The HTTP server every `dogsearch serve` process runs (uvicorn), and how long a client may take to send a request:
a client that sends its headers or its body slowly, or not at all, is cut off instead of holding a connection
(and its memory) for ever. Headers: here, in the connection's protocol, since no ASGI app sees a request before its
headers are complete; bodies: services/ops.py's BodyTimeout."""
from __future__ import annotations

import asyncio

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dogsearch.core.settings import StrictSettings


class ServerSettings(StrictSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_HTTP_", extra="forbid")

    header_timeout_s: float = Field(10.0, gt=0, description="a request's headers must all arrive within this, "
                                                            "from the connection's start or the previous answer")
    body_timeout_s: float = Field(60.0, gt=0, description="a request's whole body must arrive within this from "
                                                          "its headers, else 408 (a 20 MB photo: 330 KB/s)")
    keep_alive_s: float = Field(5.0, ge=3, description="an idle kept-alive connection is closed after this (the "
                                                        "services' own clients let theirs go after 2 s: a shorter "
                                                        "one would close connections as they send)")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="a request's headers beyond this get 431")
    max_connections: int | None = Field(
        512, ge=1, description="connections and requests at once; beyond, new requests get 503 (null: no limit). "
                               "Bounds the request bodies held at once; idle sockets count too, until cut off")

    def uvicorn_options(self) -> dict:
        return {"timeout_keep_alive": self.keep_alive_s, "limit_concurrency": self.max_connections,
                "h11_max_incomplete_event_size": self.max_header_bytes,
                "http": guarded_protocol(self.header_timeout_s, self.max_header_bytes, self.keep_alive_s)}


_END_OF_HEADERS = b"\r\n\r\n"


def guarded_protocol(header_timeout_s: float, max_header_bytes: int, keep_alive_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, as uvicorn picks), with a deadline and a size limit on
    each request's headers: a connection that has not sent them all in time gets 408 and is closed, one whose
    headers run over the size gets 431. The end of the headers is found in the bytes themselves (the first blank
    line), so the same works over either parser."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # no httptools: uvicorn's own choice is h11 then
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class GuardedProtocol(Base):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._expect_headers(header_timeout_s)

        def data_received(self, data: bytes) -> None:
            if self._header_timer is not None:
                seen = self._header_tail + data
                end = seen.find(_END_OF_HEADERS)
                # counted up to their end when this read holds it (what follows is a body): a block that ends in
                # any read, not only its first, is measured whole
                self._header_bytes += len(data) if end < 0 else end + len(_END_OF_HEADERS) - len(self._header_tail)
                if self._header_bytes > max_header_bytes:
                    return self._refuse(b"431 Request Header Fields Too Large")
                if end >= 0:
                    self._header_timer.cancel()
                    self._header_timer = None
                else:
                    self._header_tail = seen[-3:]
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():  # kept alive: the next request's headers, after an idle wait
                self._expect_headers(keep_alive_s + header_timeout_s)

        def connection_lost(self, exc) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def _expect_headers(self, within: float) -> None:
            if getattr(self, "_header_timer", None) is not None:
                self._header_timer.cancel()
            self._header_bytes, self._header_tail = 0, b""
            self._header_timer = self.loop.call_later(within, self._refuse, b"408 Request Timeout")

        def _refuse(self, status: bytes) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 " + status + b"\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()

    return GuardedProtocol
