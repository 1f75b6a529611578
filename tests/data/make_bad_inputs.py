"""Generate the awkward-input corpus in ``tests/data/bad/`` from ``tests/data/lfw/``.

Run from the repository root (``.venv/bin/python tests/data/make_bad_inputs.py``);
the output is deterministic (fixed seeds, fixed source images) and committed, so
the tests never run this script. Every file and the status the Embedder answers
for it is listed in ``tests/data/README.md``. After writing, the script checks
with the service's own decoder and HOG detector that each face image holds the
intended number of faces.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
LFW = HERE / "lfw"
OUT = HERE / "bad"

#: The face every single-face format variant shows: a 200x200 centre crop of
#: an LFW image (left, top, right, bottom), so the whole face and its 68
#: landmarks stay inside.
FACE_SOURCE = "Emma_Watson_0001.jpg"
FACE_CROP = (25, 25, 225, 225)
#: The upright image behind ``exif_rotated.jpg``: 250 wide, 200 high, so a
#: decoder that ignores the orientation tag gets the sides swapped.
EXIF_SOURCE = "Christopher_Reeve_0001.jpg"
EXIF_CROP = (0, 25, 250, 225)
#: Three people with one face each, composed side by side at decreasing scale
#: so that "largest first" has a single right answer.
THREE_SOURCES = ("Albert_Costa_0001.jpg", "Rick_Perry_0002.jpg", "Jennifer_Keller_0003.jpg")
THREE_SCALES = (1.0, 0.8, 0.64)
SEED = 20261124


def face_reference() -> Image.Image:
    """The RGB face image the format variants encode (200x200)."""
    with Image.open(LFW / FACE_SOURCE) as img:
        return img.convert("RGB").crop(FACE_CROP)


def exif_reference() -> Image.Image:
    """The upright RGB image (250 wide, 200 high) behind ``exif_rotated.jpg``."""
    with Image.open(LFW / EXIF_SOURCE) as img:
        return img.convert("RGB").crop(EXIF_CROP)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of ``width`` x ``height`` black pixels, written
    row by row so that neither this script nor the file ever holds the pixels:
    a decompression bomb of a few kilobytes."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then packed bits
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def three_faces() -> Image.Image:
    """Three single-face crops on a grey canvas, largest on the left."""
    crops = []
    for name, scale in zip(THREE_SOURCES, THREE_SCALES, strict=True):
        with Image.open(LFW / name) as img:
            crop = img.convert("RGB").crop((25, 25, 225, 225))
        side = round(200 * scale)
        crops.append(crop.resize((side, side), Image.Resampling.LANCZOS))
    canvas = Image.new("RGB", (sum(c.width for c in crops) + 40, 200), (128, 128, 128))
    x = 10
    for crop in crops:
        canvas.paste(crop, (x, (200 - crop.height) // 2))
        x += crop.width + 10
    return canvas


def no_face() -> Image.Image:
    """A 256x256 colour gradient with mild noise: a photo-like image without a face."""
    rng = np.random.default_rng(SEED)
    ramp = np.linspace(0, 255, 256)
    pixels = np.stack(
        [np.tile(ramp, (256, 1)), np.tile(ramp[:, None], (1, 256)), np.full((256, 256), 96.0)],
        axis=-1,
    )
    pixels += rng.normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def corpus() -> dict[str, bytes]:
    """File name -> bytes of every file in the corpus."""
    rng = np.random.default_rng(SEED)
    face = face_reference()
    source_jpeg = (LFW / FACE_SOURCE).read_bytes()

    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: "rotate 90 degrees clockwise to display"
    # Stored pixels are the upright image turned 90 degrees counter-clockwise.
    stored = exif_reference().transpose(Image.Transpose.ROTATE_90)

    rgba = face.copy()
    alpha = np.full((face.height, face.width), 255, np.uint8)
    alpha[:, :20] = 0  # a transparent band, dropped (not composited) on decode
    rgba.putalpha(Image.fromarray(alpha, "L"))

    corrupt = bytearray(_encode(face, "PNG"))
    corrupt[corrupt.find(b"IDAT") + 200] ^= 0xFF

    return {
        "empty.bin": b"",
        "random.bin": rng.bytes(1024),
        "text.txt": b"This is a text file, not an image.\n",
        "truncated.jpg": source_jpeg[: len(source_jpeg) * 2 // 5],
        "corrupt_idat.png": bytes(corrupt),
        "tiny_1x1.png": _encode(Image.new("RGB", (1, 1), (200, 150, 120)), "PNG"),
        "bomb_20000x20000.png": blank_png(20000, 20000),
        "oversized_8000x6000.png": blank_png(8000, 6000),
        "face.gif": _encode(face, "GIF"),
        "no_face.jpg": _encode(no_face(), "JPEG", quality=90),
        "three_faces.jpg": _encode(three_faces(), "JPEG", quality=92),
        "face_cmyk.jpg": _encode(face.convert("CMYK"), "JPEG", quality=92),
        "face_gray.png": _encode(face.convert("L"), "PNG", optimize=True),
        "face_rgba.png": _encode(rgba, "PNG", optimize=True),
        "face.webp": _encode(face, "WEBP", quality=90, method=6),
        "face.bmp": _encode(face, "BMP"),
        "exif_rotated.jpg": _encode(stored, "JPEG", quality=92, exif=exif.tobytes()),
    }


#: Faces HOG must find in each image that decodes (the others must not decode).
EXPECTED_FACES = {
    "no_face.jpg": 0,
    "three_faces.jpg": 3,
    "face_cmyk.jpg": 1,
    "face_gray.png": 1,
    "face_rgba.png": 1,
    "face.webp": 1,
    "face.bmp": 1,
    "exif_rotated.jpg": 1,
}


def _check(files: dict[str, bytes]) -> None:
    from embedder.decode import decode_image
    from embedder.detect import FaceDetector

    detector = FaceDetector()
    for name, want in EXPECTED_FACES.items():
        found = len(detector.detect(decode_image(files[name])))
        if found != want:
            raise SystemExit(f"{name}: HOG found {found} faces, expected {want}")


def main() -> None:
    files = corpus()
    _check(files)
    OUT.mkdir(exist_ok=True)
    for stale in OUT.iterdir():
        if stale.name not in files:
            stale.unlink()
    for name, data in sorted(files.items()):
        (OUT / name).write_bytes(data)
        print(f"{name:28s} {len(data):7d} bytes", file=sys.stdout)


if __name__ == "__main__":
    main()
