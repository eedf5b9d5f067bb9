"""A tiny, dependency-free PNG histogram (numpy + zlib), for dataset cards.

Deterministic bytes for the same input, and no plotting library to install for a card image.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def histogram_png(values: np.ndarray | list[float], *, bins: int = 40, value_range: tuple[float, float] = (0.0, 1.2),
                  width: int = 480, height: int = 160, marks: tuple[float, ...] = (0.95, 1.0)) -> bytes:
    """PNG bytes of a bar histogram of ``values``, with thin vertical lines at ``marks``.

    For hardness ratios (negative score / positive score) the default marks are PercPos 0.95 and 1.0.
    """
    values = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=bins, range=value_range)
    return bars_png(counts, value_range=value_range, width=width, height=height, marks=marks)


def bars_png(counts: np.ndarray | list[int], *, value_range: tuple[float, float] = (0.0, 1.2), width: int = 480,
             height: int = 160, marks: tuple[float, ...] = (0.95, 1.0)) -> bytes:
    """PNG bytes of precomputed histogram ``counts`` spread evenly over ``value_range``."""
    counts = np.asarray(counts)
    bins = max(1, len(counts))
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    top = counts.max() if counts.size and counts.max() > 0 else 1
    bar = width // bins
    for i, count in enumerate(counts):
        h = int(round((height - 10) * count / top))
        if h:
            image[height - h:, i * bar : (i + 1) * bar - 1] = (70, 110, 190)
    lo, hi = value_range
    for mark in marks:
        x = int((mark - lo) / (hi - lo) * bins * bar)
        if 0 <= x < width:
            image[:, x] = (200, 40, 40)
    image[height - 1, :] = 0  # baseline
    raw = b"".join(b"\x00" + row.tobytes() for row in image)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
