"""Images as documents: a folder of image files, or a JSONL/BEIR corpus whose rows name image files.

:func:`read_images` yields one :class:`~retrievekit.core.document.Document` per image that decodes, and skips
every other one with a reason (``on_skip(path, reason)`` and a logger warning) while the rest goes on.

**Sources.**

* A folder without a corpus file: every file under it whose extension is one of ``IMAGE_EXTENSIONS`` (any case),
  walked as :func:`retrievekit.ingest.files.iter_files` walks (in sorted name order; hidden files and folders,
  names starting with ".", left out; symlinks pointing outside the folder skipped; each real folder entered once,
  so a symlink loop ends). ``recursive=False`` reads the top level only. id = the path relative to the folder
  (POSIX); title = the sidecar's ``title`` else the file name without extension (as ``read_files`` titles a
  file); text = the caption from a sidecar beside the image with the same stem: ``NAME.txt`` (its whole text,
  stripped) or else ``NAME.json``'s ``"caption"``, else its ``"alt"``. A sidecar that cannot be read (invalid
  UTF-8, malformed JSON, a non-string value, over ``max_bytes``) skips its image: an image indexed without its
  caption would be found by nobody.
* A JSONL file (``.jsonl``/``.ndjson``, optionally ``.gz``), or a BEIR folder holding ``corpus.jsonl``: one image
  per row, named by the row's ``image`` field, a path relative to the folder of the corpus file (e.g.
  ``{"_id": "x", "title": "", "text": "a dog", "image": "images/x.jpg"}``). id, title, text and the other keys
  are read as :func:`retrievekit.ingest.read_jsonl` reads them (a nested ``"metadata"`` object is merged in).
  Malformed JSON, a bad or duplicate id and the like raise ``InputFormatError`` as ``read_jsonl`` does; a row
  without an ``image`` field, naming a missing file, an absolute path or one that leads out of the corpus folder
  (through ``..`` or a symlink), is skipped with its line number.

**Metadata** (flat JSON values; keys a JSONL row also has are overwritten by these):

* ``image``: the image's path *relative* to the source: to the folder (the id) or to the corpus file's folder
  (the row's value, as written). Relative paths keep the documents the same wherever the data is copied; the file
  is ``Path(folder) / image``.
* ``image_sha256`` (hex SHA-256 of the file's bytes), ``image_bytes`` (its size), ``image_format`` (what Pillow
  reads from the bytes, never the extension: a PNG named ``.jpg`` is ``"PNG"``; a camera JPEG holding several
  pictures is ``"MPO"``), ``image_width``/``image_height`` (pixels as stored, before any EXIF rotation).
* From EXIF, each only when present and valid: ``taken_at`` (``DateTimeOriginal``, else ``DateTime``, as ISO 8601
  ``YYYY-MM-DDTHH:MM:SS``, with the ``OffsetTimeOriginal``/``OffsetTime`` offset appended when the file has one;
  EXIF times carry no time zone otherwise), ``camera_make``, ``camera_model``, ``gps_lat``/``gps_lon`` (decimal
  degrees, negative south/west, rounded to 7 places, about 1 cm). A broken EXIF block is logged and left out, the
  image is still read.
* ``thumbnail``: ``data:image/jpeg;base64,...``, a JPEG (quality 75) whose longer side is at most
  ``thumbnail_size``, turned upright by the EXIF orientation, transparency flattened onto white. Left out when
  ``thumbnail_size`` is None. Its bytes are the same on every run with the same Pillow (libjpeg) version.

**Validation.** Each of these skips the one image, with a reason naming the problem:

* too many bytes: the file is over ``max_bytes`` (checked before it is read);
* the rest as ``core.images.decode_image`` judges them: not an image in one of ``IMAGE_FORMATS`` (judged from the
  bytes: a text file named ``.jpg``); too many pixels (width x height from the header, before anything is decoded,
  over ``max_pixels``, never Pillow's process-wide limit; Pillow itself still refuses a header over twice its own
  limit); truncated or corrupt (the image data does not decode completely; ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
  neither read nor set);
* unreadable: the file or a folder cannot be read (permissions, I/O error), or is not a regular file.

The same input gives the same documents, in the same order.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrievekit.core.document import Document, document_problem
from retrievekit.core.errors import InputFormatError, require
from retrievekit.core.images import IMAGE_FORMATS as CORE_IMAGE_FORMATS
from retrievekit.core.images import MAX_IMAGE_PIXELS, ImageDecodeError, decode_image
from retrievekit.ingest.base import DuplicateIds, check_exists, checked, decode_line, iter_binary_lines
from retrievekit.ingest.beir import find_corpus
from retrievekit.ingest.files import iter_files
from retrievekit.ingest.jsonl import record_to_document

if TYPE_CHECKING:
    from PIL import Image as PILImage

logger = logging.getLogger(__name__)

#: Called with the path of a skipped image (or of the corpus file, for a row naming no image) and the reason.
OnSkip = Callable[[Path, str], None]

DEFAULT_MAX_BYTES = 50_000_000  # 50 MB
#: Pillow's own default limit, stated so that a change to Pillow's process-wide setting does not change this one
DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS
DEFAULT_THUMBNAIL_SIZE = 128
THUMBNAIL_QUALITY = 75
IMAGE_FIELD = "image"

#: The file extensions a folder walk picks up (compared in lower case); what a file holds is read from its bytes.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff",
                              ".avif"})
#: The formats Pillow may read the bytes as (those this Pillow build has). Limiting them keeps Pillow's more
#: permissive readers (TGA, MPEG, ...) from taking a text file for an image.
IMAGE_FORMATS = CORE_IMAGE_FORMATS
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_CAPTION_KEYS = ("caption", "alt")

# EXIF tags (Pillow's ExifTags.Base / GPS numbers)
_MAKE, _MODEL, _DATETIME, _ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _OFFSET_TIME, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9010, 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


class _Skip(Exception):
    """One image cannot be read: ``reason`` says why."""


def read_images(
    source: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thumbnail_size: int | None = DEFAULT_THUMBNAIL_SIZE,
    recursive: bool = True,
    on_skip: OnSkip | None = None,
) -> Iterator[Document]:
    """Stream one document per readable image of ``source``: an image folder, a JSONL corpus file, or a BEIR folder
    (one holding ``corpus.jsonl``) whose rows name their images. See the module documentation for the fields,
    metadata and the reasons an image is skipped. Needs the ``images`` extra (Pillow).

    A missing source, a file that is not JSONL, or a bad argument raise at call time; a problem with one image
    skips that image (``on_skip(path, reason)``, and a warning on this module's logger).
    """
    image_module = require("PIL.Image", "images")
    for name, value in (("max_bytes", max_bytes), ("max_pixels", max_pixels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if thumbnail_size is not None and (isinstance(thumbnail_size, bool) or not isinstance(thumbnail_size, int)
                                       or thumbnail_size < 1):
        raise ValueError(f"thumbnail_size must be a positive integer or None, got {thumbnail_size!r}")
    if on_skip is not None and not callable(on_skip):
        raise TypeError(f"on_skip must be a function (path, reason) or None, got {type(on_skip).__name__}")
    path = Path(source)
    check_exists(path)
    reader = _ImageReader(image_module, max_bytes, max_pixels, thumbnail_size, on_skip)
    if path.is_dir():
        corpus = find_corpus(path)
        if corpus is not None:
            return reader.corpus(corpus)
        return reader.folder(path, recursive)
    if path.name.lower().removesuffix(".gz").endswith(_JSONL_SUFFIXES):
        return reader.corpus(path)
    raise InputFormatError("read_images reads an image folder or a JSONL corpus (.jsonl, .ndjson, optionally .gz) "
                           "whose rows name image files; this file is neither", path=path)


class _ImageReader:
    def __init__(self, image_module: Any, max_bytes: int, max_pixels: int, thumbnail_size: int | None,
                 on_skip: OnSkip | None) -> None:
        self.Image = image_module
        self.formats = [name for name in IMAGE_FORMATS if _has_format(image_module, name)]
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size
        self.on_skip = on_skip

    def skip(self, path: Path, reason: str) -> None:
        logger.warning("skipping %s: %s", path, reason)
        if self.on_skip is not None:
            self.on_skip(path, reason)

    # ------------------------------------------------------------------------------------------------- folder

    def folder(self, root: Path, recursive: bool) -> Iterator[Document]:
        for path, rel in self._walk(root, recursive):
            try:
                if any(c in rel for c in "\n\r\x00") or _surrogates(rel):
                    raise _Skip("the file name cannot be a document id (a line break, or not valid UTF-8); rename it")
                title, text = self._sidecar(path)
                metadata = self._image_metadata(path, rel)
                doc = Document(id=rel, text=text, title=title if title is not None else Path(rel).stem,
                               metadata=metadata)
                problem = document_problem(doc)  # e.g. a caption with a lone surrogate escape ("\ud800")
                if problem is not None:
                    raise _Skip(f"the document cannot be stored: {problem}")
            except _Skip as exc:
                self.skip(path, str(exc))
                continue
            yield doc

    def _walk(self, root: Path, recursive: bool) -> Iterator[tuple[Path, str]]:
        """``(path, relative POSIX path)`` of the image files under ``root`` (``files.iter_files``' rules), each
        folder or image left out reported as a skip."""
        return iter_files(root, IMAGE_EXTENSIONS, recursive=recursive, on_skip=self.skip)

    def _sidecar(self, image: Path) -> tuple[str | None, str]:
        """``(title or None, caption)`` from ``NAME.txt`` / ``NAME.json`` beside ``image``."""
        title: str | None = None
        text = ""
        txt = image.with_suffix(".txt")
        data = self._read_sidecar(txt)
        if data is not None:
            try:
                text = data.decode("utf-8").removeprefix("\ufeff").strip()
            except UnicodeDecodeError as exc:
                raise _Skip(f"caption file {txt.name} is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
        sidecar = image.with_suffix(".json")
        data = self._read_sidecar(sidecar)
        if data is not None:
            try:
                obj = json.loads(data.decode("utf-8").removeprefix("\ufeff"))
            except UnicodeDecodeError as exc:
                raise _Skip(f"caption file {sidecar.name} is not valid UTF-8 (byte {exc.start}: {exc.reason})"
                            ) from None
            except (ValueError, RecursionError) as exc:
                raise _Skip(f"caption file {sidecar.name} is not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise _Skip(f"caption file {sidecar.name} must hold a JSON object, got {type(obj).__name__}")
            for key in ("title", *_CAPTION_KEYS):
                value = obj.get(key)
                if value is not None and not isinstance(value, str):
                    raise _Skip(f"caption file {sidecar.name}: {key!r} must be a string, got {type(value).__name__}")
            if isinstance(obj.get("title"), str):
                title = obj["title"].strip()
            if not text:
                text = next((obj[key].strip() for key in _CAPTION_KEYS if isinstance(obj.get(key), str)), "")
        return title, text

    def _read_sidecar(self, path: Path) -> bytes | None:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _Skip(f"caption file {path.name} is unreadable: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > self.max_bytes:
            raise _Skip(f"caption file {path.name} is {info.st_size:,} bytes, over max_bytes={self.max_bytes:,}")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise _Skip(f"caption file {path.name} is unreadable: {exc.strerror or exc}") from None

    # ------------------------------------------------------------------------------------------------- corpus

    def corpus(self, corpus: Path) -> Iterator[Document]:
        base = corpus.parent
        real_base = os.path.realpath(base)
        seen = DuplicateIds(corpus)
        for number, raw in iter_binary_lines(corpus):
            if not raw.strip():
                continue
            obj = _parse_row(raw, corpus, number)
            doc = record_to_document(obj, corpus, number, id_field=None, title_field="title", text_field=None)
            seen.check(doc.id, number)
            where = f"{corpus.name} line {number}"
            value = obj.get(IMAGE_FIELD)
            if not isinstance(value, str) or not value.strip():
                problem = "has no" if value is None else f"has an empty or non-string ({type(value).__name__})"
                self.skip(corpus, f"{where}: the row {problem} {IMAGE_FIELD!r} field naming its image file")
                continue
            path = base / value.replace("\x00", "\\x00")
            try:
                if "\x00" in value:
                    raise _Skip(f"the image path {value!r} contains a NUL character")
                if os.path.isabs(value) or value.startswith(("/", "\\")):
                    raise _Skip(f"the image path {value!r} is absolute; it must be relative to the corpus file's "
                                "folder")
                real = os.path.realpath(path)
                if not (real == real_base or real.startswith(real_base.rstrip(os.sep) + os.sep)):
                    raise _Skip(f"the image path {value!r} leads outside the corpus file's folder; not read")
                metadata = self._image_metadata(path, value)
            except _Skip as exc:
                self.skip(path, f"{where}: {exc}")
                continue
            yield checked(Document(id=doc.id, text=doc.text, title=doc.title, metadata={**doc.metadata, **metadata}),
                          corpus, number)

    # -------------------------------------------------------------------------------------------------- image

    def _image_metadata(self, path: Path, image: str) -> dict[str, Any]:
        data = self._read_image(path)
        try:
            img = decode_image(data, max_pixels=self.max_pixels, formats=self.formats)
        except ImageDecodeError as exc:
            raise _Skip(exc.detail) from None
        with img:
            width, height = img.size
            metadata: dict[str, Any] = {
                "image": image,
                "image_sha256": hashlib.sha256(data).hexdigest(),
                "image_format": img.format,
                "image_width": width,
                "image_height": height,
                "image_bytes": len(data),
            }
            exif, orientation = self._exif(img, path)
            metadata.update(exif)
            if self.thumbnail_size is not None:
                metadata["thumbnail"] = self._thumbnail(img, orientation)
        return metadata

    def _read_image(self, path: Path) -> bytes:
        try:
            with open(path, "rb") as file:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise _Skip("unreadable: not a regular file")
                if info.st_size > self.max_bytes:
                    raise _Skip(f"too many bytes: the file is {info.st_size:,} bytes, over the limit "
                                f"max_bytes={self.max_bytes:,}")
                data = file.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise _Skip("image file not found") from None
        except IsADirectoryError:
            raise _Skip("unreadable: a folder, not an image file") from None
        except OSError as exc:
            raise _Skip(f"unreadable: {exc.strerror or exc}") from None
        if len(data) > self.max_bytes:  # it grew after the size check
            raise _Skip(f"too many bytes: the file is over the limit max_bytes={self.max_bytes:,}")
        return data

    def _exif(self, img: PILImage.Image, path: Path) -> tuple[dict[str, Any], int]:
        """The EXIF-derived metadata and the orientation tag (1 = upright) of a loaded image."""
        result: dict[str, Any] = {}
        try:
            exif = img.getexif()
            if not exif:
                return result, 1
            details = exif.get_ifd(_EXIF_IFD)
            taken = _exif_datetime(details.get(_DATETIME_ORIGINAL), details.get(_OFFSET_TIME_ORIGINAL)) \
                or _exif_datetime(exif.get(_DATETIME), details.get(_OFFSET_TIME))
            if taken:
                result["taken_at"] = taken
            for key, tag in (("camera_make", _MAKE), ("camera_model", _MODEL)):
                value = _exif_text(exif.get(tag))
                if value:
                    result[key] = value
            gps = exif.get_ifd(_GPS_IFD)
            lat = _gps_degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "NS", 90)
            lon = _gps_degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "EW", 180)
            if lat is not None and lon is not None:
                result["gps_lat"], result["gps_lon"] = lat, lon
            orientation = exif.get(_ORIENTATION, 1)
        except Exception as exc:  # Pillow's EXIF parser raises many kinds of error; the image itself is fine
            logger.warning("%s: cannot read its EXIF data, left out: %s", path, exc)
            return {}, 1
        return result, orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1

    def _thumbnail(self, img: PILImage.Image, orientation: int) -> str:
        Image = self.Image
        size = self.thumbnail_size
        assert size is not None
        small = img.copy() if img.mode in ("RGB", "L") else _flatten(img, Image)
        small.thumbnail((size, size), Image.Resampling.LANCZOS)
        transpose = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                     4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                     6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                     8: Image.Transpose.ROTATE_90}.get(orientation)
        if transpose is not None:
            small = small.transpose(transpose)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
        return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _has_format(image_module: Any, name: str) -> bool:
    image_module.init()
    return name in image_module.OPEN


def _surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:  # os.fsdecode kept undecodable bytes of a file name as lone surrogates
        return True


def _parse_row(raw: bytes, path: Path, number: int) -> dict[str, Any]:
    text = decode_line(raw, path, number, "strict")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"malformed JSON at column {exc.colno}: {exc.msg}", path=path, line=number) from exc
    except (ValueError, RecursionError) as exc:
        raise InputFormatError(f"cannot read the JSON: {exc}", path=path, line=number) from exc
    if not isinstance(obj, dict):
        raise InputFormatError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=number)
    return obj


def _flatten(img: PILImage.Image, Image: Any) -> PILImage.Image:
    """An RGB copy of ``img``, transparent parts on white; 16-bit and float greyscale scaled to 8 bits."""
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        grey = img.convert("F") if img.mode != "F" else img
        low, high = (float(v) for v in grey.getextrema())  # type: ignore[arg-type]  # one band: (min, max)
        scale = 255.0 / (high - low) if high > low else 0.0
        return grey.point(lambda v: (v - low) * scale).convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _exif_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    value = value.replace("\x00", " ").strip()
    return value.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates


def _exif_datetime(value: Any, offset: Any) -> str | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` as ISO 8601 (``YYYY-MM-DDTHH:MM:SS``, plus ``+HH:MM`` when ``offset`` is one);
    None for a missing or invalid value (cameras write ``0000:00:00 00:00:00`` when the clock was never set)."""
    import datetime

    text = _exif_text(value)
    try:
        moment = datetime.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    iso = moment.isoformat()
    zone = _exif_text(offset)
    if len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and zone[1:3].isdigit() and zone[4:].isdigit():
        iso += zone
    return iso


def _gps_degrees(value: Any, ref: Any, refs: str, limit: int) -> float | None:
    """Degrees, minutes, seconds (EXIF rationals) and a N/S or E/W reference as signed decimal degrees."""
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 3:
        return None
    try:
        parts = [float(part) for part in value]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(part) and part >= 0 for part in parts):
        return None
    degrees = sum(part / 60**i for i, part in enumerate(parts))
    direction = _exif_text(ref).upper()[:1]
    if direction not in refs or degrees > limit:
        return None
    return round(-degrees if direction == refs[1] else degrees, 7)


__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "IMAGE_FORMATS", "OnSkip", "read_images"]

