"""Mangled uploads (truncated, bit-flipped, spliced, wrong content types) get a 4xx and leave the store as it was,
or are a valid photo and get stored once."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.images import halves, solid

SEEDS = [solid((180, 40, 40), (48, 40)), halves((10, 200, 30), (250, 250, 0), (40, 40), "PNG"),
         solid((20, 20, 160), (40, 48), "GIF"), solid((90, 90, 90), (32, 32), "WEBP")]


@st.composite
def mangled(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["truncate", "flip", "splice", "prefix"]))
        if action == "truncate" and len(data) > 2:
            del data[draw(st.integers(1, len(data) - 1)):]
        elif action == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif action == "splice":
            data[draw(st.integers(0, len(data))):draw(st.integers(0, len(data)))] = draw(st.binary(max_size=64))
        else:
            data[:0] = draw(st.binary(min_size=1, max_size=16))
    content_type = draw(st.sampled_from(["image/jpeg", "text/plain", "application/octet-stream", "image/png"]))
    return bytes(data), content_type


def test_mangled_uploads_never_break_the_server_or_the_store(gateway_factory):
    run, client = gateway_factory

    async def count() -> int:
        return (await client.get("/v1/dogs")).json()["total"]

    @given(upload=mangled())
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(upload):
        data, content_type = upload

        async def once():
            before = await count()
            r = await client.post("/v1/dogs", files={"image": ("x", data, content_type)})
            after = await count()
            assert r.status_code in (200, 201, 413, 415, 422), (r.status_code, r.text)
            if r.status_code >= 400:
                assert after == before and isinstance(r.json()["detail"], str)
            else:
                assert after == before + (r.status_code == 201)

        run(once())

    check()
