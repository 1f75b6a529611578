"""Safe image decoding: bytes -> RGB uint8 array, EXIF orientation applied."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from likeness.errors import InvalidArgument
from likeness.reasons import Reason, measured

_UNREADABLE = Reason.IMAGE_UNREADABLE

#: Formats accepted on the wire (Pillow format names; MPO is a multi-picture JPEG).
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP"})
#: Largest accepted image, pixels (width x height), checked from the header.
MAX_PIXELS = 40_000_000
#: Smallest accepted side, pixels: nothing smaller can hold a detectable face.
MIN_SIDE = 32


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image into an RGB array of shape (height, width, 3), uint8.

    EXIF orientation is applied, so coordinates refer to the upright image.
    Grey, palette, CMYK and alpha images are converted to RGB (alpha is dropped).
    The pixel count is checked from the header, before any pixel is decoded,
    against ``max_pixels`` (default 40 MP) as a guard against decompression bombs.

    Raises:
        InvalidArgument: empty bytes, an unsupported or unrecognised format, a
            truncated or corrupt image, a side under 32 px, or too many pixels.
    """
    if not data:
        raise InvalidArgument("image is empty (0 bytes)", reason=_UNREADABLE)
    try:
        with warnings.catch_warnings():
            # Pillow warns (and raises past 2x its own limit) on huge headers;
            # our own, lower limit is checked below with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidArgument(
            "image bytes are not a supported image (JPEG, PNG, WebP or BMP)", reason=_UNREADABLE
        ) from None
    except Image.DecompressionBombError:
        raise InvalidArgument(
            f"image has more than {max_pixels} pixels",
            reason=Reason.IMAGE_TOO_LARGE,
            metadata={"limit": str(max_pixels)},
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidArgument(f"image header is corrupt: {exc}", reason=_UNREADABLE) from None
    with img:
        if img.format not in SUPPORTED_FORMATS:
            raise InvalidArgument(
                f"image format {img.format} is not supported (JPEG, PNG, WebP or BMP)",
                reason=_UNREADABLE,
            )
        width, height = img.size
        if width * height > max_pixels:
            raise InvalidArgument(
                f"image is {width}x{height} = {width * height} pixels, "
                f"more than the limit of {max_pixels}",
                reason=Reason.IMAGE_TOO_LARGE,
                metadata=measured(width * height, max_pixels),
            )
        if min(width, height) < MIN_SIDE:
            raise InvalidArgument(
                f"image is {width}x{height} pixels; each side must be at least {MIN_SIDE}",
                reason=Reason.IMAGE_TOO_SMALL,
                metadata=measured(min(width, height), MIN_SIDE),
            )
        try:
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = upright.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InvalidArgument(
                f"image data is truncated or corrupt: {exc}", reason=_UNREADABLE
            ) from None
    return np.asarray(rgb, dtype=np.uint8).copy()
