"""Webhook targets: only http(s) to public addresses, whatever spelling or name leads elsewhere."""
from __future__ import annotations

import ipaddress
import socket

import pytest

from dogsearch.watches.targets import WebhookRefused, non_public, resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
    "239.255.255.250", "100.64.0.1", "255.255.255.255", "240.0.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::1",  # 6to4 of 127.0.0.1
])
def test_non_public_addresses_are_named(address):
    assert non_public(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert non_public(ipaddress.ip_address(address)) is None


def _resolving_to(monkeypatch, *addresses: str) -> None:
    def fake(host, port, *args, **kwargs):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_a_name_is_checked_on_every_address_it_resolves_to(monkeypatch):
    _resolving_to(monkeypatch, "93.184.215.14", "10.0.0.7")  # one private among public ones: refused
    with pytest.raises(WebhookRefused, match="10.0.0.7, a private address"):
        resolve("https://hooks.example.org/x")
    _resolving_to(monkeypatch, "93.184.215.14")
    target = resolve("https://hooks.example.org:8443/x?y=1")
    assert (target.scheme, target.host, target.port, target.address) == ("https", "hooks.example.org", 8443,
                                                                        "93.184.215.14")


def test_allow_private_lets_loopback_through():
    assert resolve("http://127.0.0.1:9/x", allow_private=True).address == "127.0.0.1"
    with pytest.raises(WebhookRefused):
        resolve("http://127.0.0.1:9/x")


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "http or https"), ("gopher://example.org/", "http or https"), ("http:///x", "no host"),
    ("http://a:b@example.org/", "credentials"), ("http://example.org:99999/", "not a URL"),
    ("http://" + "a" * 3000, "2048"),
])
def test_malformed_urls_are_refused_with_the_reason(url, reason):
    with pytest.raises(WebhookRefused, match=reason):
        resolve(url, allow_private=True)
