"""Attachment thumbnails, as Mailpit makes them: a 180x120 JPEG, the image scaled to cover the box and cropped in
the middle (a smaller image is centred on white, not enlarged); anything that is not a readable image gives a
blank white thumbnail. Pure: bytes in, bytes out.

Decoding arbitrary images (PNG, JPEG, GIF, WebP, BMP ...) needs an image library; mailnest uses Pillow when it
is installed (the `thumbnails` extra) and otherwise answers every thumbnail with the blank image, logging once
that Pillow is missing. Images larger than MAX_PIXELS are not decoded (a decompression bomb would be).
"""

from __future__ import annotations

import base64
import functools
import io
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger("mailnest.http")

WIDTH, HEIGHT = 180, 120
MAX_PIXELS = 50_000_000
# A blank (white) 180x120 baseline JPEG, used when there is nothing to draw or no Pillow to draw it with.
_BLANK_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1x"
    "eXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAAR"
    "CAB4ALQDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAf/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFAEBAAAAAAAAAAAAAAAAAAAA"
    "AP/EABQRAQAAAAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAD/2Q=="
)


@functools.cache
def _pillow() -> object | None:
    try:
        from PIL import Image
    except ImportError:
        log.warning("thumbnails are blank: install Pillow (pip install 'mailnest[thumbnails]') to draw them")
        return None
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image


def blank() -> bytes:
    return _BLANK_JPEG


def make(data: bytes, content_type: str = "") -> bytes:
    """The thumbnail JPEG of an image's bytes; the blank thumbnail for anything else."""
    if not content_type.lower().startswith("image/") and content_type:
        return _BLANK_JPEG
    image_module = _pillow()
    if image_module is None:
        return _BLANK_JPEG
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as source:
            if source.width * source.height > MAX_PIXELS:
                return _BLANK_JPEG
            source.seek(0)  # the first frame of an animation
            image = ImageOps.exif_transpose(source)
            image = _flatten(image)
            if image.width >= WIDTH and image.height >= HEIGHT:
                thumb = ImageOps.fit(image, (WIDTH, HEIGHT), Image.Resampling.LANCZOS)
            else:
                image.thumbnail((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
                thumb = Image.new("RGB", (WIDTH, HEIGHT), "white")
                thumb.paste(image, ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2))
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=85)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, EOFError):
        return _BLANK_JPEG


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: transparency and palettes become plain pixels that JPEG can hold."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
