"""`dogsearch keys add`: the secret printed once, only its hash kept, and a line the gateway accepts."""
from __future__ import annotations

import re
import stat

from dogsearch.cli import main
from dogsearch.core.access import SECRET_PREFIX, read_entries
from dogsearch.services.gateway.settings import GatewaySettings


def secret_in(out: str) -> str:
    return re.search(r"secret \(shown once.*\): (\S+)", out).group(1)


def test_add_prints_the_secret_once_and_the_line_for_the_setting(capsys):
    assert main(["keys", "add", "ci", "--scope", "write"]) == 0
    out = capsys.readouterr().out
    secret = secret_in(out)
    line = re.search(r"DOGSEARCH_GATEWAY_API_KEYS: (\S+)", out).group(1)
    assert secret.startswith(SECRET_PREFIX) and secret not in line
    key = GatewaySettings(api_keys=[line]).keyring.verify(secret)
    assert (key.name, key.scope) == ("ci", "write")
    assert "takes it when it restarts" in out  # a running gateway answered the new key 401, and nothing said why


def test_add_appends_to_a_keys_file_only_its_owner_reads(tmp_path, capsys):
    keys = tmp_path / "keys.txt"
    assert main(["keys", "add", "admin", "--scope", "admin", "--file", str(keys)]) == 0
    first = secret_in(capsys.readouterr().out)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert main(["keys", "add", "reader", "--scope", "search", "--file", str(keys)]) == 0
    out = capsys.readouterr().out
    second = secret_in(out)
    assert "takes it when it restarts" in out
    assert [e.split(":")[:2] for e in read_entries(keys)] == [["admin", "admin"], ["reader", "search"]]
    ring = GatewaySettings(api_keys_file=keys).keyring
    assert ring.verify(first).name == "admin" and ring.verify(second).name == "reader"
    assert first not in keys.read_text()


def test_a_name_already_in_the_file_is_refused(tmp_path, capsys):
    keys = tmp_path / "keys.txt"
    main(["keys", "add", "ci", "--scope", "write", "--file", str(keys)])
    before = keys.read_text()
    assert main(["keys", "add", "ci", "--scope", "admin", "--file", str(keys)]) == 2
    assert "twice" in capsys.readouterr().err and keys.read_text() == before
