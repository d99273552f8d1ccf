"""Writes the HEIC files the tests read (tests/fixtures/phone/): dogsearch decodes HEIF but ships no encoder, so they
are made once, here, with pillow-heif's x265 encoder in a throwaway venv:

    python3 -m venv /tmp/heif-enc && /tmp/heif-enc/bin/pip install pillow-heif==1.9.0
    /tmp/heif-enc/bin/python scripts/heic-fixtures.py
    /tmp/heif-enc/bin/python scripts/heic-fixtures.py --bulk /tmp/bulk  # photos to time a bulk job with


- beagle.heic: tests/fixtures/dogs/n02088364/ILSVRC2012_val_00005922.jpg as a phone stores it: the pixels as the
  sensor saw them (a quarter turn off) with the file's rotation (irot) to show them upright, and the private
  metadata a phone writes (GPS position, camera make and serial, an XMP packet).
- bomb.heic: 8000x5000 pixels of one colour (40 MP, the default pixel limit) in a few kilobytes.
- two-images.heic: two images, the second (red, 48x32) the primary one that a viewer shows, the first blue 32x32.
- iphone-24mp.heic: the beagle's photo at 5712x4284, the size of an iPhone's photo from the 15 on (24 MP), with when
  and where it was taken (EXIF DateTimeOriginal, OffsetTimeOriginal, GPS), at a low quality to stay small.

With --bulk DIR, instead: 12 sample gallery photos scaled up to an iPhone's 24 MP, as a phone writes them (DIR/heic/,
x265 at quality 80) and as JPEGs (DIR/jpeg/, quality 90), for `dogsearch index DIR/heic --local` (docs/operations.md,
"Phone formats").
"""
import argparse
from pathlib import Path

import pillow_heif
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "phone"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Secretville"/>'
       b"</rdf:RDF></x:xmpmeta>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=Path, help="write photos to time a bulk job with here instead")
    args = parser.parse_args()
    pillow_heif.register_heif_opener()
    if args.bulk:
        bulk(args.bulk)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    upright = Image.open(ROOT / "tests/fixtures/dogs/n02088364/ILSVRC2012_val_00005922.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # the pixels below are turned back a quarter: orientation 6 shows them upright
    exif[0x010F], exif[0xA431] = "Phonemaker", "SERIAL-1234567"  # Make, BodySerialNumber
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)})  # GPS
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    # pillow-heif writes EXIF orientation 6 as the file's irot, as phones do
    sideways.save(OUT / "beagle.heic", quality=90, exif=exif.tobytes(), xmp=XMP)
    Image.new("RGB", (8000, 5000), (90, 60, 30)).save(OUT / "bomb.heic", quality=50)
    blue, red = Image.new("RGB", (32, 32), (0, 0, 255)), Image.new("RGB", (48, 32), (255, 0, 0))
    blue.save(OUT / "two-images.heic", save_all=True, append_images=[red], primary_index=1, quality=90)
    taken = Image.Exif()
    taken.get_ifd(0x8769).update({0x9003: "2026:11:30 18:05:09", 0x9011: "+01:00"})  # DateTimeOriginal, its offset
    taken.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)})  # GPS
    upright.resize((5712, 4284), Image.Resampling.BICUBIC).save(OUT / "iphone-24mp.heic", quality=30,
                                                                  exif=taken.tobytes())
    for path in sorted(OUT.glob("*.heic")):
        print(path.relative_to(ROOT), path.stat().st_size, "bytes")


def bulk(out: Path, photos: int = 12) -> None:
    (out / "heic").mkdir(parents=True, exist_ok=True)
    (out / "jpeg").mkdir(exist_ok=True)
    for n, path in enumerate(sorted((ROOT / "samples" / "gallery").rglob("*.jpg"))[:photos]):
        big = Image.open(path).convert("RGB").resize((5712, 4284), Image.Resampling.BICUBIC)
        big.save(out / "heic" / f"p{n:02d}.heic", quality=80)
        big.save(out / "jpeg" / f"p{n:02d}.jpg", quality=90)
    print(out, photos, "photos a format")


if __name__ == "__main__":
    main()
