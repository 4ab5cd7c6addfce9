"""Reading image and label files from disk, with a clear error for a missing or damaged file."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from globallocal.errors import UserError

#: PIL modes whose pixel values are label ids as stored (palette indices or grey levels).
LABEL_MODES = ("P", "L")

# What PIL raises for a damaged file: OSError (truncated, unidentified), SyntaxError (bad PNG
# chunk/CRC), ValueError (inconsistent header).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError)


def _missing_file_error(path: Path) -> UserError:
    return UserError(f"{path}: file not found; check the dataset root and the file list.")


def _corrupt_file_error(path: Path, reason: str) -> UserError:
    return UserError(
        f"{path}: cannot decode the image ({reason}); the file is corrupt or truncated, "
        "re-download or re-extract it."
    )


def open_image(path: Path, data: bytes | None = None) -> Image.Image:
    """Open and fully decode ``path`` with PIL, so truncation is detected here, not later.

    ``data``: the file's bytes when the caller has read them already (the data check digests them).
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise _missing_file_error(path)
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except _DECODE_ERRORS as error:
        raise _corrupt_file_error(path, str(error)) from error


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (palette, grey and RGBA images are converted)."""
    image = open_image(path)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_label_ids(path: Path, data: bytes | None = None) -> np.ndarray:
    """Read an 8-bit palette ('P') or grey ('L') label PNG (from ``data`` when given) as (H, W) uint8
    label ids. For a palette PNG the ids are the palette indices, never the colours they map to.
    """
    image = open_image(path, data)
    if image.mode not in LABEL_MODES:
        raise UserError(
            f"{path}: label image has PIL mode '{image.mode}', expected an 8-bit palette ('P') or "
            "grey ('L') PNG of label ids; use the dataset's original label files, not colour "
            "renderings."
        )
    return np.array(image, dtype=np.uint8)


def read_unchanged(path: Path, data: bytes | None = None) -> np.ndarray:
    """Read an image exactly as stored (bit depth and channel count kept), via OpenCV (from ``data``
    when given).

    Returns (H, W) or (H, W, C) in OpenCV channel order (B, G, R); uint8 or uint16.
    Used for 16-bit label files, which PIL cannot read as 3-channel 16-bit.
    """
    path = Path(path)
    if data is not None:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise _corrupt_file_error(path, "OpenCV could not decode it")
        return pixels
    if not path.is_file():
        raise _missing_file_error(path)
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise _corrupt_file_error(path, "OpenCV could not decode it")
    return pixels
