"""The files the fake Topview's results name: tiny but valid media, generated here.

A demo that archives outputs needs bytes a browser or a player accepts, and the tests need
them without a fixture downloaded from somewhere. Each generator writes the smallest file
its format allows that decoders still take:

- ``mp4``: an ISO base media file, ``ftyp`` + ``moov`` (a ``mvhd`` of one second) + an
  empty ``mdat`` (a file with no track: players open it and show nothing);
- ``jpeg``: a baseline JFIF of a mid-grey square, each 8x8 block coded as "DC unchanged,
  end of block" with one-code Huffman tables;
- ``png``: a grey RGB image (zlib, CRCs);
- ``mp3``: silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono);
- ``wav``: a second of 8 kHz 8-bit silence.

``media_file(name)`` picks by the name's extension: ``(content type, bytes)``. Over HTTP
(``FakeTopviewServer``), a task's output names ``<server>/media/<bizType>/<taskId>/
<kind>-<index>.<ext>`` instead of Topview's CDN (``local_output``), and ``media_answer`` serves it.
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Any

from topview_callbacks import biz_types
from topview_callbacks.testing.fake.runner import FakeTask, FakeTaskRunner

MEDIA_PREFIX = "/media/"
Answer = tuple[int, dict[str, str], bytes]  # an HTTP answer: (status, headers, body)

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
}


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4() -> bytes:
    """ftyp + moov(mvhd) + mdat: the boxes an MP4 reader requires, no sample."""
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2mp41")
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, 0, 0, 1000, 1000),  # version, times, timescale, duration
        struct.pack(">IH10x", 0x10000, 0x100),  # rate 1.0, volume 1.0, reserved
        identity,
        bytes(24),  # pre-defined
        struct.pack(">I", 1),  # next track id
    )
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat")


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg(width: int = 16, height: int = 16) -> bytes:
    """A baseline greyscale JPEG of ``width`` x ``height`` mid-grey pixels."""
    blocks = -(-width // 8) * -(-height // 8)
    # One Huffman code each: DC category 0 ("no change") and AC 0x00 (end of block), both
    # the 1-bit code "0"; every block is "00" and the last byte is padded with 1 bits.
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    one_code = bytes([1] + [0] * 15)  # one code of length 1
    return b"".join(
        [
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xDB, b"\x00" + bytes([1] * 64)),  # quantisation table 0: all ones
            _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
            _segment(0xC4, b"\x00" + one_code + b"\x00"),  # DC table 0: symbol 0
            _segment(0xC4, b"\x10" + one_code + b"\x00"),  # AC table 0: symbol 0 (EOB)
            _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            scan,
            b"\xff\xd9",
        ]
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int = 16, height: int = 16) -> bytes:
    """A grey RGB PNG of ``width`` x ``height``."""
    row = b"\x00" + b"\x80\x80\x80" * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(row * height)),
            _chunk(b"IEND", b""),
        ]
    )


MP3_FRAME_HEADER = b"\xff\xfb\x90\xc4"  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, mono
MP3_FRAME_BYTES = 144 * 128_000 // 44_100  # 417: no padding bit


def mp3(frames: int = 38) -> bytes:
    """``frames`` silent frames (38 frames: about a second); zero side information means
    no main data, which decoders play as silence."""
    return (MP3_FRAME_HEADER + bytes(MP3_FRAME_BYTES - 4)) * frames


def wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """8-bit mono PCM silence (the value 128)."""
    samples = b"\x80" * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


_GENERATORS = {"mp4": mp4, "jpg": jpeg, "jpeg": jpeg, "png": png, "mp3": mp3, "wav": wav}


@functools.cache
def media_file(name: str) -> tuple[str, bytes]:
    """``(content type, bytes)`` of a generated file for ``name``'s extension;
    ``KeyError`` for a format the fake does not make."""
    extension = name.rsplit(".", 1)[-1].lower()
    return CONTENT_TYPES[extension], _GENERATORS[extension]()


def local_output(task: FakeTask, base_url: str) -> dict[str, Any]:
    """``task.output`` with each media URL it names moved to ``base_url`` (same extension)."""
    moved: dict[str, str] = {}
    media = biz_types.numbered_media(biz_types.media_urls(task.biz_type, task.output))
    for kind, index, url in media:
        extension = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
        if extension in CONTENT_TYPES:
            path = f"{MEDIA_PREFIX}{task.biz_type}/{task.task_id}/{kind}-{index}.{extension}"
            moved.setdefault(url, base_url + path)
    return _replaced(task.output, moved)  # type: ignore[no-any-return]


def _replaced(value: Any, moved: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _replaced(item, moved) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, moved) for item in value]
    return moved.get(value, value) if isinstance(value, str) else value


def s3_error(http_status: int, code: str) -> Answer:
    """An error as S3 (Topview's storage) answers it."""
    body = f"<Error><Code>{code}</Code></Error>".encode()
    return http_status, {"Content-Type": "application/xml"}, body


def media_answer(path: str, runner: FakeTaskRunner) -> Answer:
    """The HTTP answer to GET ``path`` (under ``MEDIA_PREFIX``): the file, or S3's 404 when
    no task of the fake has it."""
    biz_type, _, rest = path.removeprefix(MEDIA_PREFIX).partition("/")
    task_id, _, name = rest.partition("/")
    known = bool(task_id) and runner.find(task_id, [biz_type]) is not None
    if known and "/" not in name and name.rsplit(".", 1)[-1].lower() in CONTENT_TYPES:
        content_type, body = media_file(name)
        return 200, {"Content-Type": content_type}, body
    return s3_error(404, "NoSuchKey")
