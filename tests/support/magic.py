"""The first bytes of each type ``testing.fake.media`` generates (what a browser sniffs)."""

from __future__ import annotations

MAGIC = {
    "video/mp4": b"\x00\x00\x00\x1cftypisom",
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "audio/mpeg": b"\xff\xfb",
    "audio/wav": b"RIFF",
}
