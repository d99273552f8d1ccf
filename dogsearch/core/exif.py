"""A photo's metadata: when and where it says it was taken (`taken`), and the photo's copy for the public without it
(EXIF: where it was taken, the camera's serial number, the owner's name; XMP; IPTC; comments; embedded thumbnails),
its pixels untouched.

JPEG, PNG and WebP are rewritten losslessly: their metadata segments or chunks are dropped and nothing is
re-encoded. Kept: what decoding and display need (the ICC profile, JPEG's Adobe segment that says how its colours are
stored, PNG's gamma and colour chunks, transparency) and the EXIF orientation, written back alone. A JPEG ends at
its first image's end: an MPO's other frames and whatever trails the image (a phone's motion-photo video, say) are
not served. A TIFF keeps its metadata in the same directory as its pixels' layout: it is re-encoded without it (LZW,
lossless, orientation applied). A GIF loses its comments and XMP (its frames and looping stay); a BMP has no
metadata. HEIF and AVIF keep theirs in items of the file's own index, and most browsers show no HEIC: their public
copy is a JPEG of the decoded photo (`public_jpeg`), the one copy that is encoded again with loss."""
from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from PIL import Image

from dogsearch.core.images import ImageRejected

_ORIENTATION = 0x0112
# Formats whose public copy is a JPEG of their pixels rather than the file without its metadata.
REENCODED = frozenset({"HEIF", "AVIF"})


class MetadataUnreadable(ImageRejected):
    """A stored photo whose structure cannot be walked to take its metadata out."""


def strip_private(data: bytes, fmt: str) -> bytes:
    """The photo `data` of format `fmt` (as core.images names formats) without its private metadata."""
    if fmt in REENCODED:
        raise ValueError(f"a {fmt}'s public copy is public_jpeg of its pixels, not the file without its metadata")
    try:
        if fmt in ("JPEG", "MPO"):
            return _jpeg(data)
        if fmt == "PNG":
            return _png(data)
        if fmt == "WEBP":
            return _webp(data)
        if fmt == "TIFF":
            return _tiff(data)
        if fmt == "GIF":
            return _gif(data)
    except (IndexError, ValueError, SyntaxError, struct.error, OSError, Image.DecompressionBombError) as exc:
        raise MetadataUnreadable(f"cannot take the metadata out of this {fmt}: {exc}") from exc
    return data


_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_TIME, _GPS_STATUS, _GPS_DATE = 1, 2, 3, 4, 7, 9, 29


@dataclass(frozen=True)
class Taken:
    """When and where a photo says it was taken (its EXIF, as a camera or phone writes it)."""

    at: datetime | None = None  # aware: the camera's time with its zone, or the GPS time (UTC)
    local: datetime | None = None  # the camera's time when its zone is unknown (naive): `at` is not guessed from it
    where: tuple[float, float] | None = None  # (latitude, longitude) in degrees, from the GPS position


def taken(exif: Image.Exif) -> Taken:
    """When and where `exif` says its photo was taken. A value that is absent, malformed or impossible is left out:
    the photo then does not say it."""
    main, gps = exif.get_ifd(_EXIF_IFD), exif.get_ifd(_GPS_IFD)
    local = _exif_time(main.get(_DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME_ORIGINAL))
    offset = _offset(main.get(_OFFSET_TIME_ORIGINAL))
    try:
        at = local.replace(tzinfo=offset).astimezone(UTC) if local and offset else _gps_time(gps)
    except OverflowError:  # year 9999 and a zone west of UTC, or its GPS hour 24: no instant (one such photo failed
        # its job's whole batch)
        at = None
    return Taken(at=at, local=None if at else local, where=_gps_position(gps))


def _exif_time(value: Any) -> datetime | None:
    """EXIF's "YYYY:MM:DD HH:MM:SS" (cameras that never had their clock set write zeros or spaces)."""
    try:
        return datetime.strptime(str(value).strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _offset(value: Any) -> timezone | None:
    """EXIF's "+HH:MM" offset from UTC of the time beside it."""
    text = str(value).strip("\x00 ") if value is not None else ""
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":" or not (text[1:3] + text[4:]).isdigit() or \
            int(text[4:]) >= 60:
        return None
    minutes = int(text[1:3]) * 60 + int(text[4:])
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes)) if minutes <= 14 * 60 else None


def _gps_time(gps: dict) -> datetime | None:
    """The GPS receiver's date and time of the position, in UTC."""
    try:
        day = datetime.strptime(str(gps[_GPS_DATE]).strip("\x00 "), "%Y:%m:%d")
        hours, minutes, seconds = (float(v) for v in gps[_GPS_TIME])
        at = day + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return at.replace(tzinfo=UTC) if 0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61 else None


def _gps_position(gps: dict) -> tuple[float, float] | None:
    if str(gps.get(_GPS_STATUS, "A")).strip("\x00 ") == "V":  # "void": the receiver had no fix
        return None
    try:
        lat = _degrees(gps[_GPS_LAT], gps[_GPS_LAT_REF], "NS")
        lon = _degrees(gps[_GPS_LON], gps[_GPS_LON_REF], "EW")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        return None  # (0, 0) is what some cameras write without a fix, not a dog in the Gulf of Guinea
    return round(lat, 7), round(lon, 7)  # a centimetre: no more than a receiver knows, and no float noise


def _degrees(dms: Any, ref: Any, signs: str) -> float:
    """EXIF's (degrees, minutes, seconds) rationals and its N/S or E/W reference -> signed degrees."""
    degrees, minutes, seconds = (float(v) for v in dms)
    value = degrees + minutes / 60 + seconds / 3600
    hemisphere = str(ref).strip("\x00 ").upper()
    if hemisphere not in (signs[0], signs[1]) or not math.isfinite(value) or min(degrees, minutes, seconds) < 0:
        raise ValueError(f"not a position: {dms!r} {ref!r}")
    return -value if hemisphere == signs[1] else value


def public_jpeg(image: Image.Image) -> bytes:
    """A decoded photo (RGB, turned upright) as a JPEG without metadata but its ICC profile: quality 95, colour not
    subsampled, so that the copy looks as the photo did."""
    buf = io.BytesIO()
    icc = image.info.get("icc_profile")
    image.save(buf, "JPEG", quality=95, subsampling=0, optimize=True, **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


def orientation_exif(orientation: int | None) -> bytes | None:
    """An EXIF block ("Exif\\0\\0" + TIFF) holding only the orientation, when it turns the picture; else None."""
    if orientation in (None, 1):
        return None
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    return exif.tobytes()


def _orientation(tiff: bytes) -> int | None:
    exif = Image.Exif()
    exif.load(tiff)
    value = exif.get(_ORIENTATION)
    return value if isinstance(value, int) else None


# JPEG segments kept: JFIF (APP0), the ICC profile (APP2 "ICC_PROFILE"), Adobe (APP14: the colour transform), and
# everything that is not an application segment or a comment (tables, frame, restart interval).
_APP0, _APP1, _APP2, _APP14, _APP15, _COM, _SOS, _EOI = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF, 0xFE, 0xDA, 0xD9


def _keep_jpeg_segment(marker: int, body: bytes) -> bool:
    if marker == _APP0:
        return body.startswith(b"JFIF\x00")  # not JFXX: a thumbnail
    if marker == _APP2:
        return body.startswith(b"ICC_PROFILE\x00")  # not MPF: the other frames are not served
    if marker == _APP14:
        return body.startswith(b"Adobe")
    return not (_APP0 <= marker <= _APP15 or marker == _COM)


def _jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise ValueError("no JPEG start marker")
    head, orientation, i = [], None, 2
    while True:
        if data[i] != 0xFF:
            raise ValueError(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == _SOS:
            break
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        segment, body = data[i:i + 2 + length], data[i + 4:i + 2 + length]
        if marker == _APP1 and body.startswith(b"Exif\x00\x00") and orientation is None:
            orientation = _orientation(body[6:])
        if _keep_jpeg_segment(marker, body):
            head.append(segment)
        i += 2 + length
    # The scans up to the first image's end: in entropy-coded data 0xFF is followed by 0x00 or a restart marker,
    # and the markers between progressive scans are not EOI, so the first FFD9 ends the image.
    end = data.index(b"\xff\xd9", i) + 2
    exif = orientation_exif(orientation)
    if exif is not None:
        app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        at = 1 if head and head[0][:2] == b"\xff\xe0" else 0  # after JFIF's APP0, which must come first
        head.insert(at, app1)
    return b"\xff\xd8" + b"".join(head) + data[i:end]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROPPED = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    out, i = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind, chunk = data[i + 4:i + 8], data[i:i + 12 + length]
        if len(chunk) != 12 + length:
            raise ValueError(f"chunk {kind!r} truncated")
        if kind == b"eXIf":
            exif = orientation_exif(_orientation(data[i + 8:i + 8 + length]))
            if exif is not None:
                tiff = exif[6:]  # a PNG's eXIf chunk holds the TIFF structure alone
                out.append(struct.pack(">I", len(tiff)) + b"eXIf" + tiff
                           + struct.pack(">I", zlib.crc32(b"eXIf" + tiff)))
        elif kind not in _PNG_DROPPED:
            out.append(chunk)
        i += 12 + length
        if kind == b"IEND":
            break
    return b"".join(out)


_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("no WebP RIFF header")
    chunks, i, orientation = [], 12, None
    while i + 8 <= len(data):
        kind, (size,) = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])
        body = data[i + 8:i + 8 + size]
        if kind == b"EXIF":
            orientation = _orientation(body[6:] if body.startswith(b"Exif\x00\x00") else body)
        elif kind != b"XMP ":
            chunks.append([kind, body])
        i += 8 + size + (size & 1)
    exif = orientation_exif(orientation)
    for chunk in chunks:
        if chunk[0] == b"VP8X":  # its flags say which chunks follow
            flags = chunk[1][0] & ~_VP8X_XMP & ~_VP8X_EXIF | (_VP8X_EXIF if exif else 0)
            chunk[1] = bytes([flags]) + chunk[1][1:]
    if exif is not None and any(kind == b"VP8X" for kind, _ in chunks):
        chunks.append([b"EXIF", exif[6:]])  # EXIF comes last in an extended WebP
    body = b"".join(kind + struct.pack("<I", len(b)) + b + b"\x00" * (len(b) & 1) for kind, b in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _tiff(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data), formats=("TIFF",)) as im:
        im.seek(0)
        icc = im.info.get("icc_profile")
        im.load()  # Pillow turns a TIFF by its orientation as it loads it
        pixels = Image.frombytes(im.mode, im.size, im.tobytes())  # the pixels alone, none of the TIFF's tags
        if im.mode == "P":
            pixels.putpalette(im.getpalette())
    buf = io.BytesIO()
    pixels.save(buf, "TIFF", compression="tiff_lzw", **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


# GIF application extensions kept: looping (NETSCAPE2.0, ANIMEXTS1.0) and the ICC profile; not XMP ("XMP DataXMP").
_GIF_KEPT_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _gif(data: bytes) -> bytes:
    if data[:3] != b"GIF":
        raise ValueError("no GIF header")
    i = 13 + _colour_table(data[10])  # header, logical screen, global colour table
    out = [data[:i]]
    while True:
        start, kind = i, data[i]
        if kind == 0x3B:  # trailer
            out.append(data[i:i + 1])
            return b"".join(out)
        if kind == 0x2C:  # an image: its descriptor, local colour table, LZW code size, then its data blocks
            i += 10 + _colour_table(data[i + 9]) + 1
            keep = True
        elif kind == 0x21:
            label = data[i + 1]
            keep = label not in (0xFE, 0xFF) or (label == 0xFF and data[i + 3:i + 14] in _GIF_KEPT_APPS)
            i += 2
        else:
            raise ValueError(f"unknown GIF block {kind:#x} at byte {i}")
        while data[i]:  # sub-blocks, each its length first, up to an empty one
            i += 1 + data[i]
        i += 1
        if keep:
            out.append(data[start:i])


def _colour_table(flags: int) -> int:
    """The bytes of the colour table a GIF screen or image descriptor's flags announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0
