"""E-books (.epub) and OpenDocument text and presentations (.odt, .odp), read from their zip
container with the standard library: chapters in spine order, headings, slides."""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from typing import BinaryIO
from xml.etree import ElementTree

from runtime.index.formats.common import guarded, located
from runtime.index.readers import Section, UnreadableFileError, read_html_stream

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_TITLE = re.compile(r"<(h[1-3]|title)\b[^>]*>(.*?)</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def read_epub(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """Each chapter of the spine as text, labelled with its first heading (or its title)."""
    return guarded(".epub file", handle, lambda: _epub(handle, max_chars))


def _epub(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    with zipfile.ZipFile(handle) as book:
        if any(info.flag_bits & 0x1 for info in book.infolist()):
            raise UnreadableFileError("the .epub file is encrypted")
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        rootfile = container.find(f".//{_CONTAINER}rootfile")
        if rootfile is None:
            raise UnreadableFileError("not a readable .epub file (no rootfile in META-INF/container.xml)")
        opf_path = rootfile.get("full-path", "")
        opf = ElementTree.fromstring(book.read(opf_path))
        base = posixpath.dirname(opf_path)
        manifest = {item.get("id"): item.get("href", "") for item in opf.iter(f"{_OPF}item")}
        for number, ref in enumerate(opf.iter(f"{_OPF}itemref"), start=1):
            href = manifest.get(ref.get("idref"))
            if not href:
                continue
            data = book.read(posixpath.normpath(posixpath.join(base, href)))
            title = _chapter_title(data) or f"chapter {number}"
            text = "".join(s.text for s in read_html_stream(io.BytesIO(data), "utf-8", max(len(data), 1) * 4))
            yield from located(text.strip(), title, max_chars)


def _chapter_title(data: bytes) -> str | None:
    head = data[:65536].decode("utf-8", "replace")
    found = {m.group(1).lower()[:2]: m.group(2) for m in reversed(list(_TITLE.finditer(head)))}
    for tag in ("h1", "h2", "h3", "ti"):
        if tag in found and (text := " ".join(_TAG.sub(" ", found[tag]).split())):
            return text
    return None


_ODF_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_ODF_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"


def read_odf(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """An .odt's paragraphs under their heading path, or an .odp's slides as ``slide N``."""
    return guarded("OpenDocument file", handle, lambda: _odf(handle, max_chars))


def _odf(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    with zipfile.ZipFile(handle) as container:
        if any(info.flag_bits & 0x1 for info in container.infolist()) or "encrypted" in str(
                container.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in container.namelist() else b""):
            raise UnreadableFileError("the OpenDocument file is encrypted with a password")
        root = ElementTree.fromstring(container.read("content.xml"))
    pages = list(root.iter(f"{_ODF_DRAW}page"))
    if pages:
        for number, page in enumerate(pages, start=1):
            text = "\n".join(_odf_text(p) for p in page.iter() if p.tag in (f"{_ODF_TEXT}p", f"{_ODF_TEXT}h"))
            yield from located(text, f"slide {number}", max_chars)
        return
    headings: list[tuple[int, str]] = []
    parts: list[str] = []
    for element in root.iter():
        if element.tag == f"{_ODF_TEXT}h":
            if parts:
                yield from located("\n\n".join(parts), " > ".join(h for _, h in headings) or None, max_chars)
                parts = []
            level = int(element.get(f"{_ODF_TEXT}outline-level", "1"))
            headings = [h for h in headings if h[0] < level] + [(level, _odf_text(element))]
            parts.append("#" * level + " " + _odf_text(element))
        elif element.tag == f"{_ODF_TEXT}p" and (text := _odf_text(element)).strip():
            parts.append(text)
    if parts:
        yield from located("\n\n".join(parts), " > ".join(h for _, h in headings) or None, max_chars)


def _odf_text(element: ElementTree.Element) -> str:
    return "".join(element.itertext())
