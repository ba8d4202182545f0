"""``testing.fake.media``: the generated files are what their format says, byte for byte.

No decoder is installed in the test environment, so each file is parsed here by its
format's own framing: MP4 boxes, JPEG segments, PNG chunks and CRCs, MP3 frame headers,
the RIFF header. The fake server's side (URLs in results, serving) is in
``test_testing_fake_server.py``.
"""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.support.magic import MAGIC
from topview_callbacks.testing.fake import media


def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The top-level ISO-BMFF boxes of ``data``: (type, payload); they must tile it."""
    found, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        assert size >= 8 and offset + size <= len(data)
        found.append((kind, data[offset + 8 : offset + size]))
        offset += size
    assert offset == len(data)
    return found


def test_mp4_is_ftyp_then_moov_with_a_movie_header_then_mdat() -> None:
    data = media.mp4()
    top = boxes(data)
    assert [kind for kind, _ in top] == [b"ftyp", b"moov", b"mdat"]
    assert data[4:12] == b"ftypisom"
    (mvhd_kind, mvhd), *_ = boxes(top[1][1])
    assert mvhd_kind == b"mvhd" and len(mvhd) == 100  # version 0: a 100-byte body
    timescale, duration = struct.unpack_from(">II", mvhd, 12)
    assert (timescale, duration) == (1000, 1000)


def test_jpeg_segments_parse_from_soi_to_eoi() -> None:
    data = media.jpeg(24, 16)
    assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"
    offset, markers = 2, []
    while data[offset + 1] != 0xDA:  # up to the start of scan
        marker, length = struct.unpack_from(">xBH", data, offset)
        markers.append(marker)
        if marker == 0xC0:
            _, height, width, components = struct.unpack_from(">BHHB", data, offset + 4)
            assert (width, height, components) == (24, 16, 1)
        offset += 2 + length
    assert markers == [0xE0, 0xDB, 0xC0, 0xC4, 0xC4]
    scan_header = struct.unpack_from(">H", data, offset + 2)[0]
    scan = data[offset + 2 + scan_header : -2]
    assert len(scan) == 2 and b"\xff" not in scan  # 6 blocks x 2 bits, padded; no stuffing


def test_png_chunks_have_valid_crcs_and_the_pixels_inflate() -> None:
    data = media.png(5, 3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        offset += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBB", chunks[b"IHDR"][:10]) == (5, 3, 8, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 3 * (1 + 5 * 3)


def test_mp3_is_whole_frames_each_with_a_layer_three_header() -> None:
    data = media.mp3(frames=5)
    assert len(data) == 5 * 417
    for offset in range(0, len(data), 417):
        header = data[offset : offset + 4]
        assert header[0] == 0xFF and header[1] & 0xE0 == 0xE0  # frame sync
        assert (header[1] >> 3) & 3 == 3 and (header[1] >> 1) & 3 == 1  # MPEG-1, layer III


def test_wav_header_sizes_match_the_body() -> None:
    data = media.wav(seconds=0.5, rate=8000)
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    assert struct.unpack_from("<I", data, 40)[0] == 4000 == len(data) - 44


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("video-0.mp4", "video/mp4"),
        ("image-0.JPG", "image/jpeg"),
        ("image-1.png", "image/png"),
        ("audio-0.mp3", "audio/mpeg"),
        ("audio-0.wav", "audio/wav"),
    ],
)
def test_media_file_picks_by_extension(name: str, content_type: str) -> None:
    found_type, data = media.media_file(name)
    assert found_type == content_type and data.startswith(MAGIC[content_type])


def test_an_unknown_extension_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        media.media_file("notes.txt")
