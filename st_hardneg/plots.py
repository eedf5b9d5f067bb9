"""Tiny, dependency-free PNG charts (numpy + zlib): a histogram for dataset cards, a scatter for reports.

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
    return _png(image)


def _png(image: np.ndarray) -> bytes:
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in image)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


# 3x5 glyphs for numbers, enough to label ticks and points without a font library.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    " ": "000000000000000",
}


def _text(image: np.ndarray, x: int, y: int, text: str, color=(0, 0, 0), scale: int = 2) -> None:
    """Draw ``text`` (digits, '.', '-') with its top-left corner at (x, y), clipped to the image."""
    height, width, _ = image.shape
    for k, ch in enumerate(text):
        glyph = _GLYPHS.get(ch)
        if glyph is None:
            raise ValueError(f"no glyph for {ch!r}: scatter labels take digits, '.', '-' and spaces")
        for i, bit in enumerate(glyph):
            if bit == "1":
                top, left = y + (i // 3) * scale, x + k * 4 * scale + (i % 3) * scale
                image[max(top, 0):max(min(top + scale, height), 0), max(left, 0):max(min(left + scale, width), 0)] = color


def _tick(value: float) -> str:
    """A tick label: two decimals below 100, whole numbers above (never trimmed)."""
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def scatter_png(x: np.ndarray | list[float], y: np.ndarray | list[float], *, labels: list[str] | None = None,
                width: int = 480, height: int = 360, margin: int = 52) -> bytes:
    """PNG bytes of a scatter plot of ``y`` against ``x`` with min/max ticks and numbered points.

    ``labels`` (digits only, e.g. ``"3"``) are drawn beside each point, so a caption can name them.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or not len(x):
        raise ValueError(f"x and y must be equal-length, non-empty 1-D sequences, got {x.shape} and {y.shape}")
    if labels is not None and len(labels) != len(x):
        raise ValueError(f"{len(labels)} labels for {len(x)} points")
    image = np.full((height, width, 3), 255, dtype=np.uint8)

    def span(v):
        lo, hi = float(v.min()), float(v.max())
        pad = (hi - lo) * 0.08 or abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad

    (x0, x1), (y0, y1) = span(x), span(y)
    left, right, top, bottom = margin, width - 12, 12, height - margin
    image[top:bottom + 1, left] = 0  # y axis
    image[bottom, left:right + 1] = 0  # x axis
    px = (left + (x - x0) / (x1 - x0) * (right - left)).round().astype(int)
    py = (bottom - (y - y0) / (y1 - y0) * (bottom - top)).round().astype(int)
    for value, pos in ((x.min(), px.min()), (x.max(), px.max())):
        image[bottom:bottom + 5, pos] = 0
        _text(image, pos - 12, bottom + 8, _tick(value))
    for value, pos in ((y.min(), py.max()), (y.max(), py.min())):  # pixel rows grow downwards
        image[pos, left - 5:left] = 0
        label = _tick(value)
        _text(image, left - 7 - len(label) * 8, pos - 5, label)  # right-aligned against the axis
    for i, (cx, cy) in enumerate(zip(px, py)):
        image[cy - 3:cy + 4, cx - 3:cx + 4] = (70, 110, 190)
        if labels is not None:
            _text(image, cx + 6, cy - 12, labels[i], color=(200, 40, 40))
    return _png(image)
