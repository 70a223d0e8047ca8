"""RAR4 archives with stored (uncompressed) entries, for tests: libarchive cannot write RAR."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

MARKER = b"Rar!\x1a\x07\x00"
HOST_UNIX = 3
STORE = 0x30
LONG_BLOCK = 0x8000


def _block(head_type: int, flags: int, body: bytes) -> bytes:
    """A RAR4 block: CRC16 (low half of CRC32 over type..end), type, flags, size, body."""
    rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def _file_block(name: str, data: bytes) -> bytes:
    raw_name = name.encode("utf-8")
    dos_time = (1 << 21) | (1 << 16)  # 1980-01-01 00:00
    body = struct.pack("<IIBIIBBHI", len(data), len(data), HOST_UNIX, zlib.crc32(data),
                       dos_time, 20, STORE, len(raw_name), 0o100644) + raw_name
    return _block(0x74, LONG_BLOCK, body) + data


def write_rar4(path: Path, members: dict[str, bytes]) -> Path:
    """Write `members` (archive name -> bytes, '/' separated) to a RAR4 file at `path`."""
    parts = [MARKER, _block(0x73, 0, b"\x00" * 6)]
    parts += [_file_block(name, data) for name, data in members.items()]
    parts.append(_block(0x7B, 0x4000, b""))
    path.write_bytes(b"".join(parts))
    return path
