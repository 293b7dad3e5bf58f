"""Zip archives built byte by byte for the archive-bomb tests and the archive fuzzer.

A bomb member of N MB costs no compression time: a 1 MB block of spaces deflated with a full
flush is about 1 KB that does not depend on what came before, so N copies of it (then an empty
final block) are a valid deflate stream of N MB. The writer puts any sizes, CRC and
method in the headers, so that a member can lie about its size.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

_MB = 1 << 20


@dataclass(frozen=True)
class RawMember:
    """One member as it is stored: ``data`` already compressed with ``method``.

    ``declared`` is the uncompressed size written in both headers (``size`` when ``None``).
    """

    name: str
    data: bytes
    crc: int
    size: int
    method: int = zipfile.ZIP_DEFLATED
    declared: int | None = None


def deflated(name: str, payload: bytes, level: int = 6) -> RawMember:
    """``payload`` as a deflated member."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return RawMember(name, packer.compress(payload) + packer.flush(), zlib.crc32(payload), len(payload))


def bomb_member(name: str, megabytes: int, declared: int | None = None, head: bytes = b"<r>",
                fill: bytes = b" ") -> RawMember:
    """A member of ``head`` and then ``megabytes`` MB of ``fill`` (about 1 KB per MB compressed).

    Spaces after an opening tag are well-formed XML (and HTML) as far as they go, so a reader
    that streams the member meets the size limit, not a parse error.
    """
    block = fill * (_MB // len(fill))
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(megabytes):
        crc = zlib.crc32(block, crc)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block
    return RawMember(name, start + packed * megabytes + final, crc, len(head) + megabytes * len(block),
                     declared=declared)


def members_of(path: Path) -> list[RawMember]:
    """The members of a zip file, recompressed as :class:`RawMember` values, in order."""
    with zipfile.ZipFile(path) as archive:
        return [deflated(info.filename, archive.read(info)) for info in archive.infolist()]


def write_zip(path: Path, members: list[RawMember]) -> Path:
    """A zip file holding ``members`` exactly as given (no zip64: every size under 4 GB)."""
    out, central = bytearray(), bytearray()
    for m in members:
        name = m.name.encode("utf-8")
        declared = m.size if m.declared is None else m.declared
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, m.method, 0, 0x21, m.crc, len(m.data),
                           declared, len(name), 0) + name + m.data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, m.method, 0, 0x21, m.crc,
                               len(m.data), declared, len(name), 0, 0, 0, 0, 0, offset) + name
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                                 len(out), 0)
    path.write_bytes(bytes(out))
    return path


def with_member(source: Path, target: Path, member: RawMember) -> Path:
    """``source`` rewritten to ``target`` with ``member`` in place of the member of its name
    (or added at the end)."""
    members = members_of(source)
    if not any(m.name == member.name for m in members):
        members.append(member)
    return write_zip(target, [member if m.name == member.name else m for m in members])


def lying(member: RawMember, declared: int) -> RawMember:
    """``member`` with a false uncompressed size in its headers."""
    return replace(member, declared=declared)
