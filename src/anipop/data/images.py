"""Image checks shared by prepare, validate, embed and predict: does a portrait exist and decode?"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

# The decompression-bomb limit; portraits are tiny (~225x350). Pillow itself only warns up to twice this
# and raises beyond, so image_problem enforces the limit itself from the header, before decoding.
Image.MAX_IMAGE_PIXELS = 40_000_000

# The formats portraits come in, and the only ones decoded: Pillow knows ~40 more (EPS runs Ghostscript; TIFF,
# JPEG 2000, DDS, PCX, SGI ... each a parser an attacker could aim at). Checked from the header, before decoding.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


def image_problem(path: str | Path) -> str | None:
    """Return why `path` is not a usable image ('missing', 'empty file', 'too large', 'cannot decode'), or None.

    The declared size is checked before any pixel is decoded: a few-KB PNG can declare 49 million pixels.
    """
    path = Path(path)
    if not path.is_file():
        return f"missing file {path}"
    if path.stat().st_size == 0:
        return f"empty file {path}"
    return decode_problem(path, str(path))


def decode_problem(source: Path | IO[bytes], label: str, max_pixels: int | None = None) -> str | None:
    """Why `source` (a file, or bytes a client sent) does not decode within the pixel limit, or None.

    `max_pixels`: a tighter bound than the global one (the served model's serving.max_image_pixels).
    """
    limit = min((bound for bound in (Image.MAX_IMAGE_PIXELS, max_pixels) if bound), default=None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below decides
            with Image.open(source, formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if limit and width * height > limit:
                    return (f"too large {label}: {width}x{height} = {width * height} pixels exceeds the "
                            f"{limit} pixel limit (decompression-bomb guard"
                            + ("; serving.max_image_pixels)" if limit == max_pixels else ")"))
                image.load()  # load, not verify: verify misses truncated pixel data
    except Image.DecompressionBombError as err:
        return f"too large {label}: {err}"
    except UnidentifiedImageError:
        return f"cannot decode {label}: not an image in one of the accepted formats ({', '.join(IMAGE_FORMATS)})"
    except (OSError, SyntaxError, ValueError) as err:
        return f"cannot decode {label}: {err}"
    return None


def open_rgb(source: str | Path | IO[bytes]) -> Image.Image:
    """Decode an image fully as RGB (portraits come as JPEG, PNG with alpha, palette or grey)."""
    with Image.open(source, formats=IMAGE_FORMATS) as image:
        return image.convert("RGB")
