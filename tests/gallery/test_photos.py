"""Gateway replicas sharing one photo folder write the same photo at once (two uploads of it, two first looks at
its public copy): each write is whole, and none fails for the other's."""
from __future__ import annotations

import multiprocessing
import os

import pytest

from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import photo_id, sha256_hex
from tests.images import solid

RED = solid((200, 30, 30))


def as_replicas(write) -> list[int]:
    """Runs `write()` in two processes as replicas in their containers see themselves: process id 1 each, and the
    same thread id (forked from this one thread). Both reach their rename before either renames. Exit codes."""
    fork = multiprocessing.get_context("fork")
    both = fork.Barrier(2)

    def replica() -> None:
        real_replace = os.replace

        def replace(src, dst):
            both.wait(10)
            real_replace(src, dst)

        os.getpid = lambda: 1
        os.replace = replace
        write()

    replicas = [fork.Process(target=replica) for _ in range(2)]
    [p.start() for p in replicas]
    [p.join(60) for p in replicas]
    [p.kill() for p in replicas if p.is_alive()]  # a hung replica fails the test, and is not left behind
    return [p.exitcode for p in replicas]


@pytest.mark.parametrize("copy", ["original", "public"])
def test_replicas_writing_one_photo_at_once_each_write_it_whole(tmp_path, copy):
    # They wrote into one temporary file ".tmp-<pid>-<thread id>-<name>": one's open emptied the file the other had
    # written, one's rename took the other's half-written file, and the second rename failed (the upload a 500).
    photos, photo = PhotoStore(tmp_path), photo_id(sha256_hex(RED))
    if copy == "original":
        assert as_replicas(lambda: photos.save(photo, "JPEG", RED)) == [0, 0]
        path = photos.original(photo, "JPEG")
    else:
        photos.save(photo, "JPEG", RED)
        assert as_replicas(lambda: photos.public(photo, "JPEG")) == [0, 0]
        path = photos.public(photo, "JPEG")
        assert path != photos.original(photo, "JPEG") and path.samefile(photos.original(photo, "JPEG"))
    assert path.read_bytes() == RED
    assert not [p for p in photos.files() if p.name.startswith(".tmp-")]
