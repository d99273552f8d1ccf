from __future__ import annotations

import ctypes
import sys

import pytest

from common import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_malloc_is_tuned_once_and_its_settings_are_accepted(monkeypatch):
    monkeypatch.setattr(memory, "_done", False)
    calls = []
    real = ctypes.CDLL("libc.so.6").mallopt

    class Libc:
        @property
        def mallopt(self):
            def record(param, value):
                calls.append((param, value))
                return real(param, value)  # glibc answers 1 for each setting it takes
            return record

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    assert memory.tune_malloc() is True
    assert dict(calls) == memory.SETTINGS
    assert memory.tune_malloc() is True and len(calls) == len(memory.SETTINGS)  # the second call changes nothing
