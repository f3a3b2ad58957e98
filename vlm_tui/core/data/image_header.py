"""Whether bytes start like an image a VLM processor can open, from the header alone.

A dataset check reads the first bytes of every image, never decodes one: 100,000 images must be
checked in seconds, and a full decode is the training's job.
"""

from __future__ import annotations

import base64
import binascii
import re

HEADER_BYTES = 16

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
# base64 of the first HEADER_BYTES bytes needs this many characters (padded to a block).
_BASE64_HEAD_CHARS = 4 * ((HEADER_BYTES + 2) // 3)
_DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,", re.ASCII)


def image_kind(head: bytes) -> str | None:
    """png, jpeg, gif, webp, bmp or tiff when `head` starts like one, else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return None


def file_image_kind(path: str) -> str | None:
    """The kind of image file at `path` (None: not an image); OSError when unreadable."""
    with open(path, "rb") as source:
        return image_kind(source.read(HEADER_BYTES))


def base64_image_kind(text: str) -> str | None:
    """The kind of image a base64 text (or a data: URL) holds; None when it holds none.

    Only its start is decoded for the header, but the whole text is checked to be base64.
    """
    match = _DATA_URL.match(text)
    body = text[match.end() :] if match else text
    body = "".join(body.split())
    if not body or len(body) % 4 != 0:
        return None
    try:
        head = base64.b64decode(body[:_BASE64_HEAD_CHARS], validate=True)
        # The rest is checked cheaply: a regex over the characters, not a decode.
        if not _BASE64_BODY.fullmatch(body):
            return None
    except (binascii.Error, ValueError):
        return None
    return image_kind(head)


_BASE64_BODY = re.compile(r"[A-Za-z0-9+/]*={0,2}", re.ASCII)
