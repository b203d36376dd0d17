"""Image checks shared by prepare, validate and embed: does a portrait exist and decode?"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Pillow's own decompression-bomb guard raises past this many pixels; portraits are tiny (~225x350).
Image.MAX_IMAGE_PIXELS = 40_000_000


def image_problem(path: str | Path) -> str | None:
    """Return why `path` is not a usable image ('missing', 'empty file', 'cannot decode: ...'), or None."""
    path = Path(path)
    if not path.is_file():
        return f"missing file {path}"
    if path.stat().st_size == 0:
        return f"empty file {path}"
    try:
        with Image.open(path) as image:
            image.load()  # load, not verify: verify misses truncated pixel data
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"cannot decode {path}: {err}"
    return None
