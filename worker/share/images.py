"""Lead images for posts: fetched through the SSRF guard, checked, and shrunk under a network's limit.

An article's image URL comes from a partner page, so it is fetched with the endpoint's guarded
client (``Endpoint.send(..., guard=True)``). :func:`load_image` never raises: a missing, broken,
huge or non-image picture returns None and the post goes out without it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from worker.errors import ShareError

if TYPE_CHECKING:
    from worker.share.base import Endpoint

log = logging.getLogger(__name__)

MAX_SOURCE_BYTES = 15_000_000
# Decoding a picture larger than this many pixels could exhaust memory (a decompression bomb).
MAX_PIXELS = 40_000_000
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Image:
    """A picture ready to upload."""

    data: bytes
    mime_type: str
    width: int
    height: int


def load_image(
    endpoint: Endpoint,
    url: str,
    *,
    max_bytes: int,
    max_side: int = 2000,
    formats: frozenset[str] = frozenset(_FORMATS.values()),
) -> Image | None:
    """Download ``url`` and return it at most ``max_bytes`` long and ``max_side`` pixels wide/high.

    A picture already small enough in an accepted format is passed on unchanged; otherwise it is
    re-encoded as JPEG at decreasing size and quality until it fits. Returns None on any failure.
    """
    try:
        answer = endpoint.send(
            "GET",
            url,
            what=f"image {url}",
            guard=True,
            max_bytes=MAX_SOURCE_BYTES,
            headers={"Accept": "image/*"},
        )
    except ShareError as exc:
        log.info("%s: lead image skipped: %s", endpoint.name, exc)
        return None
    return shrink_image(answer.body, max_bytes=max_bytes, max_side=max_side, formats=formats)


def shrink_image(
    data: bytes,
    *,
    max_bytes: int,
    max_side: int = 2000,
    formats: frozenset[str] = frozenset(_FORMATS.values()),
) -> Image | None:
    """``data`` as an :class:`Image` within ``max_bytes`` and ``max_side``, or None if it is no picture."""
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            mime = _FORMATS.get(probe.format or "")
            if width * height > MAX_PIXELS:
                return None
            if mime in formats and len(data) <= max_bytes and max(width, height) <= max_side:
                return Image(data, mime, width, height)
            picture = ImageOps.exif_transpose(probe).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, PILImage.DecompressionBombError):
        return None
    side = min(max_side, max(picture.size))
    for _ in range(8):
        scaled = picture.copy()
        scaled.thumbnail((side, side))
        for quality in (85, 75, 60):
            out = io.BytesIO()
            scaled.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes:
                return Image(out.getvalue(), "image/jpeg", scaled.width, scaled.height)
        side = int(side * 0.75)
        if side < 64:
            break
    return None
