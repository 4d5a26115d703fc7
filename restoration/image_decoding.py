"""Decoding one image file into 8-bit pixels: the single rule that shard building, prediction and evaluation share.

Why one rule: the contest's lost region is `input != L(gt)`, exact to the gray level, so an input and its ground
truth must be decoded the same way wherever they are read. Two decoders that disagree (one clipping 16-bit samples,
one scaling them) turn a good pair into a 100 %-lost one without any error.

The rule, by the file's PIL mode:
- 8-bit gray (`L`, `1`) and 8-bit color (`RGB`) as stored.
- 16-bit gray (`I;16`, `I;16B`, ...; `I` is read as 16-bit samples, clipped to 0..65535): v -> round(v / 257), the
  exact inverse of the usual 8 -> 16 bit scaling (v * 257), so 65535 -> 255. Never clipped, never guessed from the
  values: a dark 16-bit image stays dark.
- CMYK: to sRGB through the file's embedded ICC profile when it has one, else PIL's formula.
- palette (`P`), `YCbCr`: PIL's conversion to RGB.
- alpha (`LA`, `RGBA`, `PA`, ...) is dropped: the stored color values are used as they are, as PIL's `convert` and
  the contest's own conversion did. Compositing onto a background would change the very pixels that the lost-region
  rule compares.
- EXIF orientation is applied: pixels come in the order a viewer shows them, so a phone photo is upright in shards
  and in predictions (a prediction is a PNG without EXIF).
- float (`F`) and other modes are refused.

Only regular files are read (symlinks followed): a FIFO, device, socket, directory or dangling link is refused by
what it is, without ever being opened for reading (reading a FIFO would wait forever for a writer).

Files with more pixels than the limit (default 64 megapixels; `RESTORATION_MAX_PIXELS` sets it) are refused from
their header, before a single pixel is decoded. PIL refuses above its own ceiling (2 x `Image.MAX_IMAGE_PIXELS`,
about 179 megapixels) whatever the limit; that refusal is reported the same way.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

MAX_PIXELS_ENV = "RESTORATION_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 64_000_000
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_GRAY_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_TO_RGB = ("RGBA", "RGBa", "RGBX", "P", "PA", "YCbCr")


class ImageReadError(ValueError):
    """Why a file cannot be used, without its path: every caller names the file in its own report."""


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H, W) uint8 when the file stores gray, (H, W, 3) uint8 RGB otherwise
    mode: str  # the file's own PIL mode ('I;16', 'CMYK', 'P', ...), for reports


def max_pixels() -> int:
    """The pixel limit: `RESTORATION_MAX_PIXELS` when set (read on every call, so worker processes and tests see
    it), else 64 megapixels."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ImageReadError(f"{MAX_PIXELS_ENV} must be a positive number of pixels, got {raw!r}")
    return value


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a malformed EXIF block means "no orientation", not "no image"
        return 1


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImportError, OSError, ValueError, TypeError):  # no littlecms or a broken profile: PIL's formula
            pass
    return img.convert("RGB")


def _eight_bit(img: Image.Image) -> Image.Image:
    """The loaded image as 8-bit `L` or `RGB`, by the rule in the module docstring."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("1", "LA", "La"):
        return img.convert("L")
    if mode in _GRAY_16:
        samples = np.asarray(img).astype(np.float64)
        return Image.fromarray(np.rint(np.clip(samples, 0, 65535) / 257).astype(np.uint8))
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode in _TO_RGB:
        return img.convert("RGB")
    if mode == "F":
        raise ImageReadError("32-bit float pixels (mode F) are not supported; save it as 8- or 16-bit")
    raise ImageReadError(f"unsupported image mode {mode}")


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"{kind}, not a regular image file (only regular files are read)"


def file_problem(path: Path | str) -> str | None:
    """Why `path` is not a regular file that can be read (symlinks followed), or None when it is one. Only
    `os.stat`: nothing is opened, so a FIFO or a device is named, never waited on."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a dangling symbolic link (its target does not exist)" if os.path.islink(path) else "file not found"
    except OSError as err:  # a symlink loop, a name too long, no permission on a folder above
        return f"cannot look at it ({err.strerror or err})"
    return _not_regular(mode)


def open_regular(path: Path | str) -> BinaryIO:
    """`path` opened for binary reading when it is a regular file; raises ImageReadError saying what it is otherwise.
    Checked before opening (`file_problem`) and again on the open descriptor, opened non-blocking: a file swapped for
    a FIFO in between is refused, not waited on."""
    problem = file_problem(path)
    if problem:
        raise ImageReadError(problem)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise ImageReadError(f"cannot open it ({err.strerror or err})") from None
    problem = _not_regular(os.fstat(fd).st_mode)
    if problem:
        os.close(fd)
        raise ImageReadError(problem)
    raw = io.FileIO(fd, "rb")  # O_NONBLOCK does not change reads of a regular file
    raw.name = os.fsdecode(path)  # its name is the path (not a descriptor number), as for open(path)
    return io.BufferedReader(raw)


def decode_image(source: Path | bytes, *, limit: int | None = None) -> Decoded:
    """A file (or its bytes, e.g. a zip member) as 8-bit pixels; raises ImageReadError with the reason."""
    limit = max_pixels() if limit is None else limit
    with io.BytesIO(source) if isinstance(source, bytes) else open_regular(source) as fh:
        return _decode(fh, limit)


def _decode(fh: BinaryIO, limit: int) -> Decoded:
    try:
        with warnings.catch_warnings():  # PIL warns from ~89 MP; our own limit decides below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fh)
        with img:
            width, height = img.size
            if width * height > limit:
                raise ImageReadError(
                    f"{width}x{height} = {width * height / 1e6:.1f} megapixels is over the pixel limit of "
                    f"{limit / 1e6:g} megapixels (a decompression bomb? set {MAX_PIXELS_ENV} to read larger images)"
                )
            if width * height == 0:
                raise ImageReadError("empty image (0 pixels)")
            img.load()
            eight = _eight_bit(img)
            method = _TRANSPOSE.get(_orientation(img))
            if method is not None:
                eight = eight.transpose(method)
            return Decoded(np.array(eight), img.mode)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"over the pixel limit: PIL refuses it as a decompression bomb ({err})") from None
    except Exception as err:  # noqa: BLE001 - every decoder error means the same thing: not a usable image
        message = str(err).replace(f" {fh!r}", "")  # PIL names the file object; the caller names the file
        raise ImageReadError(f"not a readable image ({type(err).__name__}: {message})") from None


def as_gray(decoded: Decoded) -> tuple[np.ndarray, bool]:
    """(H, W) uint8 gray and whether it was converted from color (PIL 'L', as the contest made its inputs).

    Color-stored gray (equal channels) is not a conversion: its channels are the gray values exactly.
    """
    px = decoded.pixels
    if px.ndim == 2:
        return px, False
    if (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all():
        return px[..., 0].copy(), False
    return np.asarray(Image.fromarray(px).convert("L")).copy(), True


def as_rgb(decoded: Decoded) -> np.ndarray:
    """(H, W, 3) uint8 RGB; gray repeated into the three channels."""
    px = decoded.pixels
    return px if px.ndim == 3 else np.repeat(px[..., None], 3, axis=-1)
