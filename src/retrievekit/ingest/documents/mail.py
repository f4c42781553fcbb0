"""E-mail through the standard library: a message (.eml, RFC 822/5322) is one document, an mbox archive one document
per message. Text: the plain-text body, else the HTML body through the one HTML extractor; attachments are named
in the metadata, not read. Metadata: subject (also the title), from, to, cc, date, message_id."""

from __future__ import annotations

import email.policy
import re
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from retrievekit.chunking.html_text import HTMLText
from retrievekit.ingest.documents.base import (
    DocumentLimits,
    DocumentParser,
    ParsedDocument,
    TextBuilder,
    UnreadableDocument,
)

_PARSER = BytesParser(policy=email.policy.default)
# mbox: a message starts at a line beginning "From " (the start of the file or after a line end), as ``mailbox``
# reads it; escaped ">From " lines in bodies are not starts
_MBOX_START = re.compile(rb"(?:\A|(?<=\n))From [^\n]*\n")
_ESCAPED_FROM = re.compile(rb"(?m)^>(>*From )")  # body lines escaped on writing (mboxrd: one ">" is removed)
_ADDRESS_FIELDS = ("from", "to", "cc")


def message_document(message: EmailMessage, limits: DocumentLimits, key: str = "") -> ParsedDocument:
    """The document of one parsed message."""
    metadata: dict[str, Any] = {}
    subject = _header(message, "subject")
    if subject:
        metadata["subject"] = subject
    for name in _ADDRESS_FIELDS:
        value = _header(message, name)
        if value:
            metadata[name] = value
    date = _header(message, "date")
    if date:
        try:
            metadata["date"] = parsedate_to_datetime(date).isoformat()
        except (TypeError, ValueError, IndexError):
            metadata["date"] = date
    message_id = _header(message, "message-id")
    if message_id:
        metadata["message_id"] = message_id
    attachments = [part.get_filename() or part.get_content_type() for part in message.iter_attachments()]
    if attachments:
        metadata["attachments"] = [str(a) for a in attachments]
    builder = TextBuilder(limits)
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, ValueError, AssertionError):  # an unknown charset or a broken transfer encoding
            payload = body.get_payload(decode=True)
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")
        if body.get_content_type() == "text/html":
            content = HTMLText(content, include_title=False).text
        builder.add(content.replace("\r\n", "\n"))
    return builder.result("email", title=subject, metadata=metadata, key=key)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        text = str(value) if value is not None else ""
    except Exception:  # a malformed header the default policy fails on (IndexError, AttributeError, ...): raw text
        text = next((str(raw) for key, raw in message.raw_items() if key.lower() == name), "")
    return " ".join(text.split())


class EmlParser(DocumentParser):
    format = "eml"

    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        message = _PARSER.parsebytes(data)
        if not message.keys():
            raise UnreadableDocument("not an e-mail message (no header fields)")
        return [message_document(message, limits)]


class MboxParser(DocumentParser):
    """One document per message, keyed by its 1-based number in the archive (ids ``archive.mbox#3``)."""

    format = "mbox"

    def parse(self, data: bytes, path: Path, limits: DocumentLimits) -> list[ParsedDocument]:
        starts = [m for m in _MBOX_START.finditer(data)]
        if not starts:
            raise UnreadableDocument("not an mbox archive (no line starting with 'From ')")
        if len(starts) > limits.max_messages:
            raise UnreadableDocument(f"{len(starts):,} messages (over max_messages {limits.max_messages:,})")
        out = []
        for number, match in enumerate(starts, 1):
            end = starts[number].start() if number < len(starts) else len(data)
            message = _PARSER.parsebytes(_ESCAPED_FROM.sub(rb"\1", data[match.end():end]))
            out.append(message_document(message, limits, key=str(number)))
        return out
