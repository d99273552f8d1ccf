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


def _phone_jpeg() -> bytes:
    """A phone's JPEG with when and where it was taken: most of its bytes are EXIF, where the mangling lands."""
    from PIL import Image

    from tests.images import encode

    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: "2026:11:30 18:05:09", 0x9011: "+01:00"})
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0), 7: (17.0, 5.0, 9.0),
                                 29: "2026:11:30"})
    return encode(Image.new("RGB", (16, 12), (200, 120, 40)), "JPEG", exif=exif.tobytes())


@st.composite
def mangled_exif(draw):
    """A phone's JPEG with bits flipped, bytes spliced or the file cut inside its EXIF (the first ~300 bytes)."""
    data = bytearray(_phone_jpeg())
    for _ in range(draw(st.integers(1, 6))):
        if len(data) <= 21:
            break
        at = draw(st.integers(20, min(300, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "splice", "truncate"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "splice":
            data[at:at + draw(st.integers(0, 8))] = draw(st.binary(max_size=8))
        else:
            del data[at:]
    return bytes(data)


def test_mangled_exif_is_read_as_what_it_says_or_refused_never_a_server_error(gateway_factory):
    """When and where a photo was taken come from bytes a stranger wrote: a broken EXIF says nothing (or is a 4xx
    with the reason), and a report asked of it stores nothing it does not say."""
    run, client = gateway_factory

    @given(data=mangled_exif())
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(data):
        async def once():
            taken = await client.post("/v1/taken", files={"image": ("x.jpg", data, "image/jpeg")})
            assert taken.status_code in (200, 413, 415, 422), (taken.status_code, taken.text)
            added = await client.post("/v1/dogs", files={"image": ("x.jpg", data, "image/jpeg")},
                                      data={"seen_at": "photo", "location": "photo"})
            assert added.status_code in (200, 201, 413, 415, 422), (added.status_code, added.text)
            if added.status_code < 300:
                said = taken.json()
                assert {k: added.json()["payload"][k] for k in ("seen_at", "location")} == {
                    "seen_at": said["seen_at"], "location": said["location"]}
                await client.delete(f"/v1/dogs/{added.json()['id']}")

        run(once())

    check()
