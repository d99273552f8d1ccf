"""Uploads built to exhaust a service's memory: small files that declare many pixels, sent at once to a real
`dogsearch serve`; its peak resident memory is measured from /proc (VmHWM)."""
from __future__ import annotations

import io
import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.images import encode, solid
from tests.security.conftest import cpu_seconds, peak_rss_mb

# The most the server's peak RSS may grow over all the attacks below. Before decodes were bounded one palette PNG
# bomb took ~800 MiB (P -> RGBA -> composite -> RGB) and four at once ~3 GiB; now the bombs below, each over the
# limit, are refused from their headers, and one within it is decoded alone (the test after).
# A normal search (warmed up before the baseline) stays well below it: the allowed large photos below, four at once,
# each now through the dog classifier as well as the embedding model, grew it 120-170 MiB on this 2-core machine.
MAX_GROWTH_MB = 200
CONCURRENT = 4
# 8000x5000 of one colour (the pixel cap) in 25 KB: ~320 MB through libheif (scripts/heic-fixtures.py)
HEIC_BOMB = Path(__file__).resolve().parents[1] / "fixtures" / "phone" / "bomb.heic"


def palette_png_bomb() -> bytes:
    """8000x5000 = 40 MP, within the pixel cap, in ~40 KB: 0.8 GB to decode the old way, 190 MiB the best way (within
    the default limit, as a 24 MP HEIC is)."""
    im = Image.new("P", (8000, 5000), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] * 128)
    return encode(im, "PNG")


def grey_alpha_png_bomb() -> bytes:
    """8000x5000 of grey with alpha in ~80 KB: 12 bytes a pixel to decode to RGB on white, 457 MiB."""
    return encode(Image.new("LA", (8000, 5000), (90, 128)), "PNG")


def tiff_declaring(width: int, height: int) -> bytes:
    """An uncompressed RGB TIFF header declaring width x height, with no pixels behind it (a few hundred bytes)."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 2), (273, 4, 200),
            (277, 3, 3), (278, 4, height), (279, 4, width * height * 3)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", tag, kind, 1, value)
                                                   for tag, kind, value in tags) + struct.pack("<I", 0)
    head = b"II*\x00" + struct.pack("<I", 8) + ifd
    return head + b"\x00" * (256 - len(head))


def bmp_declaring(width: int, height: int) -> bytes:
    """A 32-bit BMP header with alpha (a V4 header's masks) declaring width x height, with no pixels behind it (138
    bytes): RGBA, 8 bytes a pixel to decode to RGB."""
    info = struct.pack("<IiiHHIIiiII", 108, width, height, 1, 32, 3, 0, 2835, 2835, 0, 0)
    info += struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000) + b"BGRs" + bytes(48)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + 16, 0, 0, 14 + len(info)) + info + bytes(16)


def rle4_bmp(width: int, height: int) -> bytes:
    """A 16-colour run-length BMP (RLE4) of runs of 255 pixels: 40 MP in 330 KB."""
    row = bytes([255, 0x12]) * (width // 255) + (bytes([width % 255, 0x12]) if width % 255 else b"") + b"\x00\x00"
    pixels = row * height + b"\x00\x01"  # each row ends with an end of line, the bitmap with its end
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 4, 2, len(pixels), 2835, 2835, 16, 0)
    head = 14 + len(info) + 64
    return b"BM" + struct.pack("<IHHI", head + len(pixels), 0, 0, head) + info + bytes(64) + pixels


def many_frame_gif(frames: int = 500) -> bytes:
    images = [Image.new("P", (400, 300), i % 200) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=20)
    return buf.getvalue()


def large_mpo() -> bytes:
    """A two-frame MPO (a camera's stereo pair) of 6000x4000: a JPEG, so shrunk on load and accepted."""
    frames = [Image.new("RGB", (6000, 4000), c) for c in ((120, 80, 40), (40, 80, 120))]
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:], quality=70)
    return buf.getvalue()


def progressive_jpeg(size: tuple[int, int], mode: str = "RGB", subsampling: int = 0, scans: int = 0) -> bytes:
    """A progressive JPEG of one colour, its last scan repeated `scans` more times (each ~26 bytes)."""
    data = encode(Image.new(mode, size, (90, 120, 60, 0)[:len(mode)]), "JPEG", quality=90, subsampling=subsampling,
                  progressive=True)
    last = data[data.rindex(b"\xff\xda"):-2]  # from its SOS to the EOI: 0xFF in scan data is stuffed as FF 00
    return data[:-2] + last * scans + data[-2:]


def png_with_text(chunks: int) -> bytes:
    """A small PNG with `chunks` zTXt chunks before its pixels, each 1 MB of one letter in ~1 KB."""
    png = encode(Image.new("RGB", (64, 48), (200, 0, 0)), "PNG")
    text = zlib.compress(b"a" * 1_000_000, 9)
    at = png.index(b"IDAT") - 4
    return png[:at] + b"".join(png_chunk(b"zTXt", b"k%d\x00\x00" % i + text) for i in range(chunks)) + png[at:]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def send_all(url: str, path: str, data: bytes, n: int) -> list[httpx.Response]:
    def one(_: int) -> httpx.Response:
        return httpx.post(f"{url}{path}", files={"image": ("x", data)}, timeout=120)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_decompression_bombs_are_refused_without_the_memory_they_declare(start_server):
    server = start_server()
    url, pid = server.url, server.proc.pid
    warm = httpx.post(f"{url}/v1/search", files={"image": ("d.jpg", solid((120, 60, 30), (640, 480)))}, timeout=120)
    assert warm.status_code == 200, warm.text
    baseline = peak_rss_mb(pid)

    refused = {"grey and alpha PNG bomb": grey_alpha_png_bomb(), "TIFF declaring 36 MP": tiff_declaring(6000, 6000),
               "BMP with alpha declaring 36 MP": bmp_declaring(6000, 6000),
               "HEIC of 40 MP in 25 KB": HEIC_BOMB.read_bytes()}
    for name, data in refused.items():
        assert len(data) < 100_000, name
        for path in ("/v1/search", "/v1/dogs"):
            for answer in send_all(url, path, data, CONCURRENT):
                assert answer.status_code == 413, (name, path, answer.text)
                assert "too large to decode" in answer.json()["detail"], (name, path)

    # Allowed, and decoded within the bound: the first frame of a long GIF, a large MPO shrunk on load.
    for name, data in {"GIF of 500 frames": many_frame_gif(), "6000x4000 MPO": large_mpo()}.items():
        for answer in send_all(url, "/v1/search", data, CONCURRENT):
            assert answer.status_code == 200, (name, answer.text)
        assert httpx.post(f"{url}/v1/dogs", files={"image": ("x", data)}, timeout=120).status_code == 201, name

    growth = peak_rss_mb(pid) - baseline
    assert growth < MAX_GROWTH_MB, f"peak RSS grew {growth:.0f} MiB over {baseline:.0f} MiB"


def test_a_long_thin_image_costs_no_memory(start_server):
    """A 1 x 100,000 PNG is a few hundred bytes and 100,000 pixels, under every limit on size and pixels; the models
    resize a photo by its short side, so it became 256 x 25.6 M pixels there: one search took the server past 20 GB
    until the kernel killed it. Refused from its header at every door, the dog detector on; so is a sliver of a box
    marked in a large photo."""
    server = start_server(env={"DOGSEARCH_EMBEDDER_DETECTOR": "lite0-centernet"})
    url, pid = server.url, server.proc.pid
    warm = httpx.post(f"{url}/v1/search", files={"image": ("d.jpg", solid((120, 60, 30), (640, 480)))}, timeout=120)
    assert warm.status_code in (200, 422), warm.text
    baseline = peak_rss_mb(pid)
    for size in ((1, 100_000), (100_000, 1), (30, 5_000)):
        thin = encode(Image.new("L", size, 255), "PNG")
        assert len(thin) < 5_000
        for path in ("/v1/search", "/v1/dogs", "/v1/detect", "/v1/pose"):
            answer = httpx.post(f"{url}{path}", files={"image": ("thin.png", thin)}, timeout=60)
            assert answer.status_code == 422, (size, path, answer.text)
            assert answer.json()["code"] == "image_too_thin" and "too long and thin" in answer.json()["detail"]
    large = encode(Image.new("RGB", (4000, 3000), (90, 120, 60)), "JPEG")
    sliver = httpx.post(f"{url}/v1/search", files={"image": ("large.jpg", large)}, data={"box": "0,0,4000,16"},
                        timeout=60)
    assert sliver.status_code == 422 and "mark the whole dog" in sliver.json()["detail"], sliver.text
    growth = peak_rss_mb(pid) - baseline
    assert growth < MAX_GROWTH_MB, f"peak RSS grew {growth:.0f} MiB over {baseline:.0f} MiB"


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_bombs_within_the_limit_are_decoded_one_at_a_time(start_server, runtime):
    """The default limit takes a 40 MP palette PNG (190 MiB to decode, as an iPhone's 24 MP HEIC takes 187), so a
    small file may cost that much, but no more at once than the decodes' shared budget: four sent together under a
    budget of one are decoded one after another, and the peak grows by about one. On openvino too: its thread pool,
    once started before malloc was tuned, spread the decodes over malloc arenas that never gave their memory to each
    other (390 MiB here, growing with every bomb)."""
    budget = 192 << 20
    server = start_server(env={"DOGSEARCH_EMBEDDER_RUNTIME": runtime,
                               "DOGSEARCH_EMBEDDER_DECODE_MEMORY_BYTES": str(budget)})
    url, pid = server.url, server.proc.pid
    warm = httpx.post(f"{url}/v1/search", files={"image": ("d.jpg", solid((120, 60, 30), (640, 480)))}, timeout=120)
    assert warm.status_code == 200, warm.text
    baseline = peak_rss_mb(pid)
    for answer in send_all(url, "/v1/search", palette_png_bomb(), CONCURRENT):
        assert answer.status_code == 200, answer.text
    growth = peak_rss_mb(pid) - baseline
    # One decode at a time: ~190 MiB of pixels and some for the model's input; two at once would be ~380 MiB, four
    # unbounded ~800 MiB.
    assert growth < 300, f"peak RSS grew {growth:.0f} MiB over {baseline:.0f} MiB"


def test_progressive_jpegs_cost_what_they_take_and_scan_and_segment_bombs_are_refused(start_server):
    """A JPEG shrinks while it decodes, so any was taken as cheap; a progressive one keeps every coefficient of the
    full image (6 bytes a pixel at 4:4:4, 8 for CMYK): four 0.9 MB CMYK ones of 40 MP at once grew the server 1.2 GB.
    libjpeg reads every block once a scan: the last scan repeated 300 times (0.5 MB) took 13 s of a core, 20 MiB of
    them hours. Pillow reads the segments before the first scan in Python: 20 MiB of empty ones, 18 s. Now the
    first are refused from their header, as the PNG bombs are, and a JPEG of more than 64 scans or 1000 segments
    before Pillow reads it; a photo's progressive JPEG is searched as before."""
    server = start_server()
    url, pid = server.url, server.proc.pid
    photo = progressive_jpeg((4000, 3000), subsampling=2)
    warm = httpx.post(f"{url}/v1/search", files={"image": ("d.jpg", photo)}, timeout=120)
    assert warm.status_code == 200, warm.text
    baseline = peak_rss_mb(pid)
    for answer in send_all(url, "/v1/search", progressive_jpeg((8000, 5000), "CMYK"), CONCURRENT):
        assert answer.status_code == 413 and "too large to decode" in answer.json()["detail"], answer.text
    scan_bomb = progressive_jpeg((8000, 5000), subsampling=2, scans=300)
    for path in ("/v1/search", "/v1/dogs"):
        answer = httpx.post(f"{url}{path}", files={"image": ("x.jpg", scan_bomb)}, timeout=120)
        assert answer.status_code == 413 and "too many scans" in answer.json()["detail"], answer.text
    segment_bomb = photo[:2] + b"\xff\xe5\x00\x02" * 2_000_000 + photo[2:]  # 8 MB of empty APP5 segments
    cpu = cpu_seconds(pid)
    answer = httpx.post(f"{url}/v1/search", files={"image": ("x.jpg", segment_bomb)}, timeout=120)
    assert answer.status_code == 413 and "too many segments" in answer.json()["detail"], answer.text
    assert cpu_seconds(pid) - cpu < 1  # refused before Pillow reads them (~4 s a read here)
    assert httpx.post(f"{url}/v1/dogs", files={"image": ("d.jpg", photo)}, timeout=120).status_code == 201
    growth = peak_rss_mb(pid) - baseline
    assert growth < MAX_GROWTH_MB, f"peak RSS grew {growth:.0f} MiB over {baseline:.0f} MiB"


def test_a_png_of_megabytes_of_text_or_of_a_million_chunks_is_refused(start_server):
    """Pillow keeps a PNG's text chunks, unpacked, whenever it opens the file, up to 64 MB: 64 zTXt chunks of 1 MB of
    one letter are a 64 KB file, and 16 searches with it at once grew the server 1 GB. And it reads each chunk in
    Python: 20 MiB of empty ones took 4.8 s a read. Now the text is bounded (4 MiB; 413 past it), and so are the
    chunks (32768), counted before Pillow reads them; a photo with a few MB of text is still searched."""
    server = start_server()
    url, pid = server.url, server.proc.pid
    warm = httpx.post(f"{url}/v1/search", files={"image": ("d.png", png_with_text(3))}, timeout=120)
    assert warm.status_code == 200, warm.text
    baseline = peak_rss_mb(pid)
    bomb = png_with_text(64)
    assert len(bomb) < 100_000
    for answer in send_all(url, "/v1/search", bomb, 16):
        assert answer.status_code == 413 and "too much text" in answer.json()["detail"], answer.text
    png = encode(Image.new("RGB", (64, 48), (200, 0, 0)), "PNG")
    at = png.index(b"IDAT") - 4
    chunk_bomb = png[:at] + png_chunk(b"prVt", b"") * 700_000 + png[at:]  # 8.4 MB
    cpu = cpu_seconds(pid)
    answer = httpx.post(f"{url}/v1/search", files={"image": ("x.png", chunk_bomb)}, timeout=120)
    assert answer.status_code == 413 and "too many chunks" in answer.json()["detail"], answer.text
    assert cpu_seconds(pid) - cpu < 1  # ~2 s a read before
    growth = peak_rss_mb(pid) - baseline
    assert growth < MAX_GROWTH_MB, f"peak RSS grew {growth:.0f} MiB over {baseline:.0f} MiB"


def test_a_gif_of_millions_of_empty_comments_is_refused_before_pillow_reads_them(start_server):
    """Pillow reads a GIF's extensions before its first image in Python, a piece at a time: 20 MiB of empty comments
    took 2.2 s each time the file was read. Now at most 10,000 pieces are read, by a count before Pillow's."""
    server = start_server()
    url, pid = server.url, server.proc.pid
    gif = encode(Image.new("RGB", (64, 48), (200, 0, 0)), "GIF", comment=b"Rex")
    assert httpx.post(f"{url}/v1/search", files={"image": ("d.gif", gif)}, timeout=120).status_code == 200
    at = gif.index(b",")  # the image descriptor
    bomb = gif[:at] + b"\x21\xfe\x00" * 2_800_000 + gif[at:]  # 8.4 MB
    cpu = cpu_seconds(pid)
    answer = httpx.post(f"{url}/v1/search", files={"image": ("x.gif", bomb)}, timeout=120)
    assert answer.status_code == 413 and "too many blocks" in answer.json()["detail"], answer.text
    assert cpu_seconds(pid) - cpu < 1  # ~1 s a read before


def test_a_run_length_bmp_is_refused_before_python_decodes_it(start_server):
    """Pillow decodes a run-length BMP in Python, holding the interpreter's lock: a 40 MP RLE4 of 330 KB took 2 s of
    a core, and while eight were decoded a search of a small photo waited 5.6 s (0.15 s alone). Now it is refused
    from its header (415)."""
    server = start_server()
    bomb = rle4_bmp(8000, 5000)
    assert len(bomb) < 400_000
    for answer in send_all(server.url, "/v1/search", bomb, CONCURRENT):
        assert answer.status_code == 415 and "run-length" in answer.json()["detail"], answer.text


def test_a_dog_cannot_carry_megabytes_of_fields(start_server):
    """Extra form fields and the `payload` JSON are copied into every entry of the dog: bounded as they come in
    (before, ~20 MB of them were stored with one photo)."""
    server = start_server()
    photo = {"image": ("d.jpg", solid((10, 120, 60), (320, 240)))}
    attacks = {
        "many form fields": {f"f{i}": "x" for i in range(500)},
        "one long form field": {"notes": "x" * 1_000_000},
        "20 MB of form fields": {f"f{i}": "x" * 999_000 for i in range(20)},
        "a large payload": {"payload": '{"notes": "' + "x" * 100_000 + '"}'},
    }
    for name, data in attacks.items():
        answer = httpx.post(f"{server.url}/v1/dogs", files=photo, data=data, timeout=60)
        assert answer.status_code == 413, (name, answer.status_code, answer.text[:200])
        assert "limit" in answer.json()["detail"] or " than " in answer.json()["detail"], name
    deep = httpx.post(f"{server.url}/v1/dogs", files=photo, data={"payload": '{"a": ' + "[" * 3000 + "]" * 3000 + "}"},
                      timeout=60)
    assert deep.status_code == 422 and "nested deeper" in deep.json()["detail"]
    fine = httpx.post(f"{server.url}/v1/dogs", files=photo, data={"name": "Rex", "notes": "brown, shy"}, timeout=60)
    assert fine.status_code == 201 and fine.json()["payload"]["notes"] == "brown, shy"


def test_a_json_body_is_refused_before_it_is_parsed(start_server):
    """A JSON body took a photo's limit (20 MB) and was parsed whole at ~50x its size before any field's limit
    applied: 9 MB of `{"breed": [{}, {}, ...]}` grew the gateway ~450 MiB for one request. Now any body but a form
    is refused past DOGSEARCH_GATEWAY_MAX_JSON_BYTES, unread."""
    server = start_server()
    dog = httpx.post(f"{server.url}/v1/dogs", files={"image": ("d.jpg", solid((10, 120, 60), (320, 240)))},
                     timeout=60).json()["id"]
    pid = server.proc.pid
    baseline = peak_rss_mb(pid)
    huge = b'{"breed": [' + b"{}," * 3_000_000 + b"{}]}"
    as_json = {"content-type": "application/json"}
    for method, path in (("PATCH", f"/v1/dogs/{dog}"), ("POST", "/v1/jobs/index")):
        answer = httpx.request(method, f"{server.url}{path}", content=huge, headers=as_json, timeout=60)
        assert answer.status_code == 413 and "request too large" in answer.json()["detail"], answer.text[:200]
    growth = peak_rss_mb(pid) - baseline
    assert growth < 100, f"peak RSS grew {growth:.0f} MiB over {baseline:.0f} MiB"
    # fields near a dog's limits, sent escaped: within the limit
    fields = {"notes": "\u00e9" * 2000, "tags": ["t" * 100] * 60}
    fine = httpx.patch(f"{server.url}/v1/dogs/{dog}", content=json.dumps(fields), headers=as_json, timeout=60)
    assert fine.status_code == 200 and fine.json()["payload"]["notes"] == fields["notes"], fine.text[:200]
