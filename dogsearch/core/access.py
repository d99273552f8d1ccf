"""Who may do what: API keys with cumulative scopes (search < write < admin), stored only as the sha256 of their
secret, and when a service may run open (without keys). No HTTP here: the gateway reads the keys from requests
(services/gateway/security.py) and asks this module what they allow."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dogsearch.core.errors import Forbidden, InvalidInput

Scope = Literal["search", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("search", "write", "admin")  # each includes the ones before it
SECRET_PREFIX = "dgs_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAKE_ADMIN_KEY = "dogsearch keys add admin --scope admin"


class InvalidKeyEntry(InvalidInput):
    """A keys setting or file line that is not `name:scope:sha256hex`, a name given twice, or one secret twice."""


def new_secret() -> str:
    """A key's secret: shown once, then only its hash is kept."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def allows(scope: Scope | None, needed: Scope) -> bool:
    return scope is not None and SCOPES.index(scope) >= SCOPES.index(needed)


def scopes_of(scope: Scope | None) -> list[Scope]:
    """The scopes a key of `scope` has: its own and every lower one."""
    return [] if scope is None else list(SCOPES[:SCOPES.index(scope) + 1])


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: Scope
    digest: str  # sha256 hex of the secret

    @classmethod
    def parse(cls, entry: str) -> ApiKey:
        parts = entry.strip().split(":")
        if len(parts) != 3:
            raise InvalidKeyEntry(f"API key entry {_shown(entry)}: expected name:scope:sha256hex")
        name, scope, digest = parts
        if not _NAME.match(name):
            raise InvalidKeyEntry(f"API key name {name!r}: letters, digits, '_', '.', '-' (max 64)")
        if scope not in SCOPES:
            raise InvalidKeyEntry(f"API key {name!r}: scope {scope!r} is not one of {', '.join(SCOPES)}")
        if not _SHA256.match(digest):
            raise InvalidKeyEntry(f"API key {name!r}: the hash must be 64 lowercase hex digits (sha256)")
        return cls(name, scope, digest)  # type: ignore[arg-type]

    @classmethod
    def make(cls, name: str, scope: Scope, secret: str) -> ApiKey:
        return cls.parse(f"{name}:{scope}:{hash_secret(secret)}")

    @property
    def entry(self) -> str:
        return f"{self.name}:{self.scope}:{self.digest}"


def _shown(entry: str) -> str:
    # An entry may be a pasted secret by mistake: never echo it whole.
    return repr(entry[:12] + "...") if len(entry) > 12 else repr(entry)


def read_entries(path: Path) -> list[str]:
    """A keys file: one entry a line; blank lines and `#` comments are skipped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


class Keyring:
    """The keys a service accepts. Empty: nobody has keys, so the service is open (see `open_allowed`)."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self.keys: list[ApiKey] = []
        for key in keys:
            if any(k.name == key.name for k in self.keys):
                raise InvalidKeyEntry(f"API key name {key.name!r} is given twice")
            if same := next((k for k in self.keys if k.digest == key.digest), None):
                # one secret, two names (and maybe two scopes): which one a request is would be the list's order
                raise InvalidKeyEntry(f"API keys {same.name!r} and {key.name!r} have the same secret")
            self.keys.append(key)

    @property
    def open(self) -> bool:
        return not self.keys

    @property
    def has_admin(self) -> bool:
        return any(k.scope == "admin" for k in self.keys)

    def verify(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, else None. Every key is compared, in constant time each."""
        digest = hash_secret(secret).encode()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest.encode()):
                found = key
        return found


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a key's name and scope; or nobody (name None), with every scope when the service is
    open, none otherwise; `internal`: another of our services, with the internal credential."""

    name: str | None
    scope: Scope | None
    open: bool = False
    internal: bool = False

    def may(self, needed: Scope) -> bool:
        return self.internal or allows(self.scope, needed)

    def check_may_change(self, owner: str | None, what: str) -> None:
        """Changing or deleting something needs the key that made it, or admin."""
        if self.may("admin") or (self.name is not None and self.name == owner and self.may("write")):
            return
        if owner is None:  # stored while the server was open, or by a job started without a key (the CLI)
            raise Forbidden(f"{what} was added without a key: only an admin key may change it")
        raise Forbidden(f"{what} was added by another key: only that key or an admin key may change it")

    def sees(self, owner: str | None) -> bool:
        """Whether a job (or another record of who made it) is this caller's to see."""
        return self.may("admin") or (self.name is not None and self.name == owner)


OPEN = Caller(None, "admin", open=True)
NOBODY = Caller(None, None)


def is_loopback(host: str) -> bool:
    """Reachable only from this machine: 127.0.0.0/8, ::1 or localhost."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def open_allowed(host: str, require_keys: bool = False) -> bool:
    """A service without keys is open to anyone who reaches it: allowed only where nobody else can."""
    return not require_keys and is_loopback(host)


def exposure_problem(host: str, keyring: Keyring, require_keys: bool = False) -> str | None:
    """Why the gateway must not start bound to `host` with these keys, or None when it may."""
    if keyring.has_admin or open_allowed(host, require_keys):
        return None
    why = "DOGSEARCH_GATEWAY_REQUIRE_KEYS is set" if require_keys else f"it is bound to {host}, not a loopback address"
    if require_keys:  # compose sets it: a keys file on the host is not in the container, the .env line is
        how = (f"Make one with `docker compose run --rm --no-deps gateway {MAKE_ADMIN_KEY}` (or `{MAKE_ADMIN_KEY}`) "
               "and put the line it prints in DOGSEARCH_GATEWAY_API_KEYS (compose: in .env); a keys file "
               "(DOGSEARCH_GATEWAY_API_KEYS_FILE) must be a path inside the container, on a mounted volume")
    else:
        how = (f"Make one with `{MAKE_ADMIN_KEY} --file keys.txt` and set DOGSEARCH_GATEWAY_API_KEYS_FILE=keys.txt "
               "(or put the line it prints in DOGSEARCH_GATEWAY_API_KEYS)")
    return f"refusing to start without an admin API key: {why}, so anyone who reaches it could do anything. {how}"


# What a stranger could do with an internal service left open.
_OPEN_DOOR = {"search": "read, change or delete every dog in the collection",
              "embedder": "spend its CPU or GPU on photos of their own, as much as they like",
              "pose": "spend its CPU or GPU on photos of their own, as much as they like"}


def internal_problem(service: str, host: str, has_internal_key: bool) -> str | None:
    """Why an internal service (embedder, search, pose) must not start bound to `host`, or None when it may."""
    if has_internal_key or is_loopback(host):
        return None
    return (f"refusing to start the {service} service on {host} without an internal key: anyone who reaches it "
            f"could {_OPEN_DOOR.get(service, 'use it')}. Set DOGSEARCH_INTERNAL_KEY (the same on every service; "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")


def check_internal(secret: str | None, internal_key: str | None) -> bool:
    return bool(secret and internal_key) and hmac.compare_digest(secret.encode(), internal_key.encode())
