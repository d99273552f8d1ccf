from __future__ import annotations

import pytest

from dogsearch.core.access import (
    OPEN,
    SECRET_PREFIX,
    ApiKey,
    Caller,
    InvalidKeyEntry,
    Keyring,
    allows,
    exposure_problem,
    hash_secret,
    internal_problem,
    is_loopback,
    new_secret,
    open_allowed,
    scopes_of,
)
from dogsearch.core.errors import Forbidden


def test_secrets_are_random_and_only_their_hash_is_kept():
    secret = new_secret()
    assert secret.startswith(SECRET_PREFIX) and len(secret) > 40 and secret != new_secret()
    key = ApiKey.make("ci", "write", secret)
    assert key.entry == f"ci:write:{hash_secret(secret)}" and secret not in key.entry
    assert ApiKey.parse(key.entry) == key


def test_scopes_are_cumulative():
    assert scopes_of("admin") == ["search", "write", "admin"] and scopes_of("search") == ["search"]
    assert scopes_of(None) == []
    assert allows("admin", "write") and allows("write", "search") and not allows("search", "write")
    assert not allows(None, "search")


def test_a_keyring_knows_its_keys_and_nothing_else():
    keys = Keyring([ApiKey.make("a", "search", "dgs_a"), ApiKey.make("b", "admin", "dgs_b")])
    assert keys.verify("dgs_b").name == "b" and keys.verify("dgs_a").scope == "search"
    assert keys.verify("dgs_c") is None and keys.verify("") is None
    assert keys.has_admin and not keys.open and Keyring().open
    with pytest.raises(InvalidKeyEntry, match="twice"):
        Keyring([ApiKey.make("a", "search", "x"), ApiKey.make("a", "write", "y")])
    # one secret under two names and scopes: which a request is would be the order of the file's lines
    with pytest.raises(InvalidKeyEntry, match="'reader' and 'boss' have the same secret"):
        Keyring([ApiKey.make("reader", "search", "same"), ApiKey.make("boss", "admin", "same")])


def test_a_bad_entry_never_echoes_a_pasted_secret():
    with pytest.raises(InvalidKeyEntry) as err:
        ApiKey.parse("dgs_" + "s" * 40)
    assert "s" * 20 not in str(err.value)


def test_owners_and_admins_may_change_what_they_made():
    alice, bob, root = Caller("alice", "write"), Caller("bob", "write"), Caller("root", "admin")
    alice.check_may_change("alice", "dog 1")
    root.check_may_change("alice", "dog 1")
    OPEN.check_may_change(None, "dog 1")
    refused = ((bob, "alice"), (Caller("alice", "search"), "alice"), (bob, None), (Caller(None, None), None))
    for caller, owner in refused:
        with pytest.raises(Forbidden, match="another key" if owner else "added without a key: only an admin key"):
            caller.check_may_change(owner, "dog 1")
    assert alice.sees("alice") and not bob.sees("alice") and root.sees("alice")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("10.0.0.1", False), ("dogs.example", False),
    ("", False),
])
def test_open_access_is_allowed_on_loopback_addresses_only(host, loopback):
    assert is_loopback(host) is loopback
    assert open_allowed(host) is loopback
    assert open_allowed(host, require_keys=True) is False


def test_exposure_problem_says_how_to_make_an_admin_key():
    problem = exposure_problem("0.0.0.0", Keyring())
    assert "dogsearch keys add admin --scope admin" in problem and "0.0.0.0" in problem
    assert exposure_problem("127.0.0.1", Keyring()) is None
    required = exposure_problem("127.0.0.1", Keyring(), require_keys=True)
    # as compose runs it: a keys file on the host is not in the container
    assert "REQUIRE_KEYS" in required and "keys.txt" not in required
    assert "docker compose run --rm --no-deps gateway dogsearch keys add admin --scope admin" in required
    writers = Keyring([ApiKey.make("w", "write", "x")])
    assert exposure_problem("0.0.0.0", writers) is not None  # an admin key it must be
    assert exposure_problem("0.0.0.0", Keyring([ApiKey.make("r", "admin", "x")])) is None


def test_an_internal_service_off_loopback_needs_the_internal_key():
    assert "DOGSEARCH_INTERNAL_KEY" in internal_problem("search", "0.0.0.0", False)
    # each says what a stranger could do with that service (the embedder's said "change the collection")
    assert "every dog in the collection" in internal_problem("search", "0.0.0.0", False)
    assert "collection" not in internal_problem("embedder", "0.0.0.0", False)
    assert internal_problem("search", "0.0.0.0", True) is None
    assert internal_problem("search", "127.0.0.1", False) is None
