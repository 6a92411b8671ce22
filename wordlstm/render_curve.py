"""A model's learning curve (`api.LearningCurve`) drawn: train and validation perplexity
per epoch on a log scale, the epochs where the learning rate changed and the one where
weight averaging began marked. In the terminal as text (rich), or as a PNG that this module
rasterises itself (zlib and struct: no plotting library)."""

from __future__ import annotations

import math
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wordlstm.api import LearningCurve


def log_range(c: LearningCurve) -> tuple[float, float]:
    """The y axis: log10 of the smallest and largest finite perplexity, a little apart."""
    values = [math.log10(v) for v in c.train + c.valid if v > 0 and math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(0.05, 0.05 * (high - low))
    return low - pad, high + pad


def text(c: LearningCurve, width: int = 60, height: int = 14):
    """The curve as rich Text: valid ppl ● (magenta), train ppl • (cyan), a dotted column ┊
    where the lr changed, ┆ (green) where averaging began; y labels on a log scale."""
    from rich.text import Text

    n = len(c.train)
    width = max(width, n)
    low, high = log_range(c)
    grid = [[(" ", "")] * width for _ in range(height)]

    def column(epoch: int) -> int:
        return 0 if n == 1 else round((epoch - 1) * (width - 1) / (n - 1))

    def row(ppl: float) -> int | None:
        if not (ppl > 0 and math.isfinite(ppl)):
            return None
        return round((high - math.log10(ppl)) / (high - low) * (height - 1))

    for epoch, _ in c.lr_changes:
        for r in range(height):
            grid[r][column(epoch)] = ("┊", "yellow")
    if c.averaging_from is not None:
        for r in range(height):
            grid[r][column(c.averaging_from)] = ("┆", "green")
    series = ((c.train, "·", "•", "cyan"), (c.valid, "·", "●", "magenta"))
    for values, between, _, style in series:  # the line between epochs, then the points
        for epoch in range(1, len(values)):
            a, b = row(values[epoch - 1]), row(values[epoch])
            x0, x1 = column(epoch), column(epoch + 1)
            for x in range(x0 + 1, x1):
                if a is not None and b is not None:
                    grid[round(a + (b - a) * (x - x0) / (x1 - x0))][x] = (between, style)
    for values, _, mark, style in series:
        for epoch, v in enumerate(values, start=1):
            r = row(v)
            if r is not None:
                grid[r][column(epoch)] = (mark, style)
    out = Text()
    for r, cells in enumerate(grid):
        label = 10 ** (high - r * (high - low) / (height - 1))
        out.append(f"{label:9.2f} │" if r % 3 == 0 else f"{'':9} │")
        for ch, style in cells:
            out.append(ch, style=style)
        out.append("\n")
    out.append(f"{'':9} └{'─' * width}\n")
    out.append(f"{'':11}epoch 1{f'epoch {n}':>{max(0, width - 7)}}\n")
    out.append("● valid ppl", style="magenta")
    out.append("  ")
    out.append("• train ppl", style="cyan")
    if c.lr_changes:
        changes = ", ".join(f"{lr:g} from epoch {e}" for e, lr in c.lr_changes)
        out.append("  ┊ lr: " + changes, style="yellow")
    if c.averaging_from is not None:
        out.append(f"  ┆ averaging from epoch {c.averaging_from}", style="green")
    return out


# The PNG: white canvas, grey axes, blue train line, orange valid line, yellow lr marks,
# green averaging mark, and the y axis's labels drawn in a 3x5 pixel font, scaled up.
COLOURS = {
    "axis": (90, 90, 90),
    "grid": (225, 225, 225),
    "train": (31, 119, 180),
    "valid": (255, 127, 14),
    "lr": (200, 170, 0),
    "average": (44, 160, 44),
}
DIGITS = {  # 3 wide, 5 high, rows top to bottom
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010",
}  # fmt: skip


class Canvas:
    """An RGB picture to draw on, written as a PNG."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, rgb: tuple[int, int, int], size: int = 1) -> None:
        for yy in range(y - size // 2, y - size // 2 + size):
            for xx in range(x - size // 2, x - size // 2 + size):
                if 0 <= xx < self.width and 0 <= yy < self.height:
                    k = 3 * (yy * self.width + xx)
                    self.pixels[k : k + 3] = bytes(rgb)

    def line(self, a: tuple, b: tuple, rgb: tuple, size: int = 1, dash: int = 0) -> None:
        """A straight line from a to b (Bresenham), dashed every `dash` pixels if given."""
        (x0, y0), (x1, y1) = a, b
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.dot(x0, y0, rgb, size)
            if (x0, y0) == (x1, y1):
                return
            step += 1
            e2 = 2 * err
            if e2 >= dy:
                err, x0 = err + dy, x0 + sx
            if e2 <= dx:
                err, y0 = err + dx, y0 + sy

    def label(self, x: int, y: int, s: str, rgb: tuple, scale: int = 2) -> None:
        """Digits and dots in the 3x5 font, their top left at (x, y)."""
        for ch in s:
            bits = DIGITS.get(ch, "0" * 15)
            for k, bit in enumerate(bits):
                if bit == "1":
                    for yy in range(scale):
                        for xx in range(scale):
                            self.dot(x + (k % 3) * scale + xx, y + (k // 3) * scale + yy, rgb)
            x += 4 * scale

    def png(self) -> bytes:
        """The picture as PNG bytes: 8-bit RGB, no interlace, each row unfiltered."""

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        row = 3 * self.width
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * row : (y + 1) * row]) for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def picture(c: LearningCurve, width: int = 640, height: int = 400) -> bytes:
    """The curve as PNG bytes: perplexity on a log scale against the epoch."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 70, width - 20, 20, height - 30
    low, high = log_range(c)
    n = len(c.train)

    def x_of(epoch: int) -> int:
        return left if n == 1 else round(left + (epoch - 1) * (right - left) / (n - 1))

    def y_of(ppl: float) -> int:
        return round(top + (high - math.log10(ppl)) / (high - low) * (bottom - top))

    for k in range(5):  # grid lines and their labels
        value = 10 ** (high - k * (high - low) / 4)
        y = y_of(value)
        canvas.line((left, y), (right, y), COLOURS["grid"])
        canvas.label(6, y - 5, f"{value:.1f}"[:7], COLOURS["axis"])
    for epoch, _ in c.lr_changes:
        canvas.line((x_of(epoch), top), (x_of(epoch), bottom), COLOURS["lr"], 2, dash=6)
    if c.averaging_from is not None:
        x = x_of(c.averaging_from)
        canvas.line((x, top), (x, bottom), COLOURS["average"], 2, dash=3)
    canvas.line((left, top), (left, bottom), COLOURS["axis"], 2)
    canvas.line((left, bottom), (right, bottom), COLOURS["axis"], 2)
    for values, name in ((c.train, "train"), (c.valid, "valid")):
        points = [
            (x_of(e), y_of(v)) for e, v in enumerate(values, start=1) if v > 0 and math.isfinite(v)
        ]
        for a, b in zip(points, points[1:], strict=False):
            canvas.line(a, b, COLOURS[name], 3)
        for p in points:
            canvas.dot(*p, COLOURS[name], 7)
    canvas.label(left, bottom + 10, "1", COLOURS["axis"])
    canvas.label(right - 4 * 2 * len(str(n)), bottom + 10, str(n), COLOURS["axis"])
    return canvas.png()
