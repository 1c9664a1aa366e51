"""Write RGB frames as PNG files without an imaging library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["save_png", "upscale"]


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8 ``(H, W, 3)`` RGB image as an 8-bit PNG."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"save_png expects a uint8 (H, W, 3) image, got dtype {image.dtype} and shape "
            f"{image.shape}"
        )
    height, width, _ = image.shape
    image = np.ascontiguousarray(image)

    # Each scanline starts with filter type 0 (none).
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge an ``(H, W, C)`` image by repeating each pixel ``factor`` times per axis."""
    if factor < 1:
        raise ValueError(f"upscale factor must be >= 1, got {factor}")
    return image.repeat(factor, axis=0).repeat(factor, axis=1)
