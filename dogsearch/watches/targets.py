"""Where a webhook may go: http or https to a public address only (no SSRF into the server's own network), checked
when the watch is made and again before every delivery, on the addresses the name resolves to then (a name that
resolved to a public address at creation may resolve to 127.0.0.1 later: DNS rebinding). The delivery connects to
the very address checked here."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from dogsearch.core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048


class WebhookRefused(InvalidInput):
    """A webhook URL that is malformed, not http(s), or leads to a loopback, private or otherwise non-public
    address."""


@dataclass(frozen=True)
class Target:
    """A checked webhook destination: the URL as given and the address to connect to (the host's, resolved and
    checked)."""

    url: str
    scheme: str
    host: str  # as in the URL (the Host header and TLS name)
    port: int
    address: str  # the IP to connect to


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without credentials; WebhookRefused otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"webhook_url: at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"webhook_url: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused(f"webhook_url: http or https only, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise WebhookRefused("webhook_url: no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook_url: no credentials in the URL (the signature authenticates deliveries)")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def non_public(ip: IPAddress) -> str | None:
    """Why an address is not a public one a webhook may reach, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour  # ::ffff:127.0.0.1 and 2002:7f00:1:: reach IPv4 addresses
        if embedded is not None:
            return non_public(embedded)
    for kind in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), documentation ranges
        return "not global"
    return None


def resolve(url: str, allow_private: bool = False) -> Target:
    """Checks `url` and resolves its host now (blocking: run it in a thread). Every address the name resolves to
    must be public (one private among them is refused: the connection could go to any of them), unless
    `allow_private`."""
    scheme, host, port = parse_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"webhook_url: cannot resolve {host!r} ({exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
    if not addresses:
        raise WebhookRefused(f"webhook_url: {host!r} resolves to no address")
    if not allow_private:
        for ip in addresses:
            if (why := non_public(ip)) is not None:
                raise WebhookRefused(f"webhook_url: {host!r} resolves to {ip}, a {why} address: webhooks go to public "
                                     "addresses only (an operator may allow others: "
                                     "DOGSEARCH_GATEWAY_WEBHOOK_ALLOW_PRIVATE)")
    return Target(url, scheme, host, port, str(addresses[0]))
