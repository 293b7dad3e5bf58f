"""Mail: one message (.eml) or a mailbox (.mbox), through the standard library's email package.

Each message gives its subject, sender and date with its plain-text body (an HTML-only body
goes through the HTML reader); attachments in a format rt reads are indexed with their own
location, ``message → attachment`` (plus the attachment's own page, slide or heading).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import BinaryIO

from runtime.index.formats.base import BinaryFileError, Section, UnreadableFileError, fingerprint
from runtime.index.formats.common import guarded, located
from runtime.index.formats.html import read_html_stream

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 << 20  # one message of a mailbox held in memory at a time


def read_eml(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """One message with its attachments."""
    return guarded(".eml message", handle, lambda: _message(handle.read(), None, max_chars))


def read_mbox(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """Every message of an mbox file, read one message at a time."""
    return guarded(".mbox mailbox", handle, lambda: _mbox(handle, max_chars))


def _mbox(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    lines: list[bytes] = []
    number, size, previous_blank = 0, 0, True
    for line in handle:
        if line.startswith(b"From ") and previous_blank and lines:
            number += 1
            yield from _message(b"".join(lines), number, max_chars)
            lines, size = [], 0
        elif not (line.startswith(b"From ") and not lines):
            if size < MAX_MESSAGE_BYTES:
                lines.append(line[1:] if line.startswith(b">From ") else line)
                size += len(line)
        previous_blank = not line.strip()
    if lines:
        yield from _message(b"".join(lines), number + 1, max_chars)


def _message(data: bytes, number: int | None, max_chars: int) -> Iterator[Section]:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    subject = " ".join(str(message.get("subject", "")).split()) or "(no subject)"
    name = subject if number is None else f"message {number}: {subject}"
    header = "\n".join(f"{k}: {message[k]}" for k in ("Subject", "From", "To", "Date") if message[k])
    body = message.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        content = body.get_content()
        if body.get_content_type() == "text/html":
            raw = content.encode("utf-8")
            content = "".join(s.text for s in read_html_stream(io.BytesIO(raw), "utf-8", len(raw) * 4 + 1))
        text = content
    yield from located(f"{header}\n\n{text}".strip(), name, max_chars)
    for attachment in message.iter_attachments():
        filename = attachment.get_filename()
        if filename:
            yield from _attachment(attachment, Path(filename).name, name, max_chars)


def _attachment(part: EmailMessage, filename: str, message: str, max_chars: int) -> Iterator[Section]:
    from runtime.index.readers import reader_for  # the registry, which reaches this module lazily

    try:
        reader = reader_for(Path(filename))
    except BinaryFileError:
        return
    if reader.kind in ("email", "mbox"):
        return
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return
    facts = fingerprint(io.BytesIO(payload))
    if reader.text and facts.encoding is None:
        return
    where = f"{message} → {filename}"
    try:
        for section in reader.read(io.BytesIO(payload), facts.encoding, max_chars):
            inner = section.location or (f"page {section.page}" if section.page is not None else None)
            yield replace(section, location=f"{where}, {inner}" if inner else where, line_anchors=None)
    except UnreadableFileError as exc:  # a broken attachment (or a bomb) does not lose the message
        logger.info("attachment %s skipped: %s", where, exc)
        return
