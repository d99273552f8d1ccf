"""Slow clients (slowloris): connections that send their headers or body a few bytes at a time, or stall, against
a real `dogsearch serve`. Each is cut off within its deadline, and while many stall, other requests are served."""
from __future__ import annotations

import socket
import time

import httpx

DEADLINE_S = 2.0
ENV = {"DOGSEARCH_HTTP_HEADER_TIMEOUT_S": str(DEADLINE_S), "DOGSEARCH_HTTP_BODY_TIMEOUT_S": str(DEADLINE_S)}
STALLED_HEADERS = b"GET /v1/dogs HTTP/1.1\r\nHost: dogs\r\nX-Slow: "
STALLED_BODY = (b"POST /v1/search HTTP/1.1\r\nHost: dogs\r\nContent-Type: multipart/form-data; boundary=xx\r\n"
                b"Content-Length: 100000\r\n\r\n--xx\r\nContent-Disposition: form-data; name=\"image\"; "
                b"filename=\"d.jpg\"\r\n\r\n\xff\xd8\xff")


def stall(url: str, sent: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(sent)
    return sock


def answer_and_close(sock: socket.socket) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and how long that took."""
    start, received = time.monotonic(), b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic() - start


def test_a_stalled_body_gets_408_and_the_connection_is_closed(start_server):
    server = start_server(env=ENV)
    received, took = answer_and_close(stall(server.url, STALLED_BODY))
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"not received within" in received and b'"code":"request_timeout"' in received
    assert took < DEADLINE_S + 3


def test_stalled_headers_get_408_and_the_connection_is_closed(start_server):
    server = start_server(env=ENV)
    for sent in (b"", STALLED_HEADERS):  # nothing at all, or headers that never end
        received, took = answer_and_close(stall(server.url, sent))
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert took < DEADLINE_S + 3
    # Headers that never end, sent fast: refused at the size limit (64 KiB), not held until the deadline. The
    # server closes with our bytes unread, so the 431 may be lost to a reset.
    start = time.monotonic()
    try:
        received, _ = answer_and_close(stall(server.url, STALLED_HEADERS + b"x" * 200_000))
        assert received.startswith(b"HTTP/1.1 431"), received[:200]
    except ConnectionError:
        pass
    assert time.monotonic() - start < 1


def test_headers_over_the_limit_get_431_however_they_are_split(start_server):
    # The end of the headers arriving in a later read than their start is still counted: a block of 70 KB sent
    # in pieces is over the 64 KiB limit, one of 60 KB is not.
    server = start_server(env=ENV)

    def sent_in_pieces(size: int) -> bytes:
        head = b"GET /healthz HTTP/1.1\r\nHost: dogs\r\nX-Big: "
        block = head + b"x" * (size - len(head) - 4) + b"\r\n\r\n"
        with stall(server.url, block[:40_000]) as sock:
            for start in (40_000, 60_000):
                time.sleep(0.3)  # each piece its own read
                sock.sendall(block[start:start + 20_000])
            return sock.recv(4096)

    assert sent_in_pieces(70_000).startswith(b"HTTP/1.1 431")
    assert sent_in_pieces(60_000).startswith(b"HTTP/1.1 200")


def test_headers_trickled_byte_by_byte_are_cut_off_at_the_deadline(start_server):
    server = start_server(env=ENV)
    sock, start = stall(server.url, b"GET /healthz HTTP/1.1\r\n"), time.monotonic()
    try:
        while time.monotonic() - start < DEADLINE_S + 5:
            sock.sendall(b"X")  # a byte a quarter second: never a whole header
            time.sleep(0.25)
    except OSError:  # closed under us: cut off
        pass
    assert time.monotonic() - start < DEADLINE_S + 3


def test_many_stalled_connections_do_not_stop_other_requests(start_server):
    server = start_server(env=ENV)
    stalled = [stall(server.url, STALLED_HEADERS if i % 2 else STALLED_BODY) for i in range(100)]
    start = time.monotonic()
    answer = httpx.get(f"{server.url}/v1/dogs", timeout=10)
    assert answer.status_code == 200 and time.monotonic() - start < 2
    time.sleep(DEADLINE_S + 1)
    for sock in stalled:  # all cut off by now
        sock.settimeout(3)
        received, _ = answer_and_close(sock)
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
