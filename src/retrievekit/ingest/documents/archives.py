"""Zip archives (DOCX, PPTX, EPUB) checked on their directory before anything is decompressed, so a zip bomb is
refused by what it declares; ``zipfile`` then never inflates a member beyond its declared size (its reader stops at
``file_size`` and checks the CRC), so a member that lies about its size cannot inflate further either."""

from __future__ import annotations

import io
import zipfile

from retrievekit.ingest.documents.base import DocumentLimits, UnreadableDocument


def checked_zip(data: bytes, limits: DocumentLimits, what: str) -> zipfile.ZipFile:
    """The archive in ``data`` once its directory is within ``limits``; else ``UnreadableDocument`` with why."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise UnreadableDocument(f"corrupt {what} (not a readable zip archive: {exc})") from None
    members = archive.infolist()
    if len(members) > limits.max_zip_members:
        raise UnreadableDocument(f"{what} archive has {len(members):,} members (over max_zip_members "
                                 f"{limits.max_zip_members:,})")
    total = 0
    for info in members:
        total += info.file_size
        if info.file_size > (1 << 20) and info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
            raise UnreadableDocument(
                f"{what} looks like a zip bomb: member {info.filename!r} inflates {info.compress_size:,} bytes to "
                f"{info.file_size:,} (ratio over max_zip_ratio {limits.max_zip_ratio:g})")
    if total > limits.max_unzipped_bytes:
        raise UnreadableDocument(f"{what} looks like a zip bomb: {total:,} bytes uncompressed (over "
                                 f"max_unzipped_bytes {limits.max_unzipped_bytes:,})")
    return archive
