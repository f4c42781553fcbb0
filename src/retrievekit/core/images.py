"""Decoding untrusted images, once for every reader (image ingest, image-text encoders, perceptual hashes, HTTP
image queries): the type is judged from the bytes, never the name; the pixel count from the header before anything
is decoded, against the caller's limit (Pillow's process-wide ``Image.MAX_IMAGE_PIXELS`` is neither read nor set;
Pillow still refuses, by itself, a header over twice it); and the image is decoded completely here, so a truncated
file fails at once with a reason instead of later, half-decoded. Pillow is imported on first use (extra ``images``).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrievekit.core.errors import RetrievekitError

#: Pillow's own default (``Image.MAX_IMAGE_PIXELS``: a 1 GB 24-bit image / 4 / 3), stated so that a Pillow change
#: cannot move it
MAX_IMAGE_PIXELS = 89_478_485

#: what an image reader accepts unless told otherwise (Pillow format names)
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")


class ImageDecodeError(RetrievekitError):
    """An image that cannot be used. ``reason``: ``not_an_image`` (the bytes are none of the accepted formats),
    ``too_many_pixels`` (over the limit: a decompression bomb?) or ``corrupt`` (truncated or undecodable); ``detail``
    says what was found, without the file's name (``str(error)`` has it where one was given)."""

    def __init__(self, reason: str, detail: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {detail}" if where else detail)
        self.reason, self.detail = reason, detail


def pillow() -> Any:
    """``PIL.Image``, or a RetrievekitError naming the extra that installs it."""
    try:
        from PIL import Image
    except ImportError:
        raise RetrievekitError("images need Pillow: pip install 'retrievekit[images]'") from None
    return Image


def image_source(image: Any) -> tuple[bytes, str]:
    """The encoded bytes of an image given as bytes or a file path, and how errors name it; RetrievekitError for a
    missing or unreadable file or another kind of value (callers take decoded PIL images before asking)."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image), "image bytes"
    if not isinstance(image, str | os.PathLike):
        raise RetrievekitError(f"an image must be a PIL image, a file path or encoded image bytes, got "
                               f"{type(image).__name__}")
    where = str(image)
    try:
        return Path(image).read_bytes(), where
    except FileNotFoundError:
        raise RetrievekitError(f"{where}: no such image file") from None
    except OSError as exc:
        raise RetrievekitError(f"{where}: cannot read the image file ({exc.strerror or exc})") from None


def decode_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS, formats: Sequence[str] | None = IMAGE_FORMATS,
                 where: str | None = None) -> Any:
    """The fully decoded ``PIL.Image`` of the encoded image ``data`` (format, EXIF and mode as stored: convert it
    yourself), or ImageDecodeError. ``formats``: the Pillow formats accepted (None: any Pillow reads); ``where``
    names the source in error messages."""
    Image = pillow()
    if not data:
        raise ImageDecodeError("corrupt", "the image is empty (0 bytes)", where)
    with warnings.catch_warnings():  # the limit below decides, not Pillow's warning between its limit and twice it
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError("too_many_pixels", f"the image has more pixels than Pillow allows ({exc}), over "
                                   f"the limit of {max_pixels:,} (a decompression bomb?)", where) from None
        except (OSError, ValueError, SyntaxError, EOFError):  # UnidentifiedImageError is an OSError
            accepted = f"accepted: {', '.join(formats)}; " if formats else ""
            raise ImageDecodeError("not_an_image", f"not an image in a supported format (judged from its bytes; "
                                   f"{accepted}it starts with {bytes(data[:16])!r})", where) from None
        width, height = img.size
        if width * height > max_pixels:
            img.close()
            raise ImageDecodeError("too_many_pixels", f"the image is {width}x{height} = {width * height:,} pixels, "
                                   f"over the limit of {max_pixels:,} (a decompression bomb?)", where)
        try:
            img.load()
        except Image.DecompressionBombError:
            img.close()
            raise ImageDecodeError("too_many_pixels", f"the image decodes to more than {max_pixels:,} pixels (a "
                                   "decompression bomb?)", where) from None
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
            img.close()
            raise ImageDecodeError("corrupt", f"the {img.format} image cannot be decoded, it is truncated or corrupt "
                                   f"({exc})", where) from None
    return img
