"""Charts as SVG text, drawn on the server: nothing to fetch, no JavaScript, a millisecond each.

`line_chart` draws series against steps (log y axis on request; long series downsampled with their
spikes kept); `decision_map` draws a 2-D classifier's decision over a grid with the data on top.
The MLflow worker stores them as run artifacts; the pages can serve them as they are.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

import numpy as np

from services.store.metrics import downsample

Series = dict[str, tuple[np.ndarray, np.ndarray]]
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_POINTS = 2000  # per series; each bucket keeps its first, min, max and last point
MAX_LEGEND = 12
MARGIN = (56, 16, 36, 44)  # left, right, top, bottom


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if value != 0 else "0"


class _Frame:
    """The plotting area: data coordinates to SVG pixels."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float], log_y: bool) -> None:
        self.width, self.height, self.log_y = width, height, log_y
        left, right, top, bottom = MARGIN
        self.box = (left, top, width - right, height - bottom)
        self.x0, self.x1 = x if x[1] > x[0] else (x[0] - 0.5, x[0] + 0.5)
        y0, y1 = (math.log10(y[0]), math.log10(y[1])) if log_y else y
        self.y0, self.y1 = (y0, y1) if y1 > y0 else (y0 - 0.5, y0 + 0.5)

    def px(self, x: np.ndarray) -> np.ndarray:
        left, _, right, _ = self.box
        return left + (x - self.x0) / (self.x1 - self.x0) * (right - left)

    def py(self, y: np.ndarray) -> np.ndarray:
        _, top, _, bottom = self.box
        y = np.log10(y) if self.log_y else y
        return bottom - (y - self.y0) / (self.y1 - self.y0) * (bottom - top)

    def axes(self, x_label: str, y_label: str) -> list[str]:
        left, top, right, bottom = self.box
        out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#999"/>']
        for x in _ticks(self.x0, self.x1):
            px = float(self.px(np.array(x)))
            out.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#999"/>'
                       f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{_label(x)}</text>')
        if self.log_y:
            y_ticks = [10.0 ** e for e in range(math.floor(self.y0), math.ceil(self.y1) + 1) if self.y0 <= e <= self.y1] or [10 ** self.y0]
        else:
            y_ticks = _ticks(self.y0, self.y1)
        for y in y_ticks:
            py = float(self.py(np.array(y)))
            out.append(f'<line x1="{left - 4}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#eee"/>'
                       f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{_label(y)}</text>')
        out.append(f'<text x="{(left + right) / 2}" y="{self.height - 6}" text-anchor="middle">{escape(x_label)}</text>'
                   f'<text transform="translate(12,{(top + bottom) / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
        return out


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>'
            f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>{"".join(body)}</svg>')


def line_chart(series: Series, title: str, x_label: str = "step", y_label: str = "", log_y: bool = False,
               y_range: tuple[float, float] | None = None, width: int = 640, height: int = 360) -> str | None:
    """Each series a line against its steps; None when there is nothing to draw."""
    drawn = {}
    for name, (steps, values) in series.items():
        keep = np.isfinite(values) & ((values > 0) if log_y else True)
        if np.count_nonzero(keep):
            drawn[name] = downsample(np.asarray(steps)[keep], np.asarray(values)[keep], MAX_POINTS)
    if not drawn:
        return None
    xs = np.concatenate([s for s, _ in drawn.values()])
    ys = np.concatenate([v for _, v in drawn.values()])
    frame = _Frame(width, height, (float(xs.min()), float(xs.max())), y_range or (float(ys.min()), float(ys.max())), log_y)
    body = frame.axes(x_label, y_label)
    for i, (name, (steps, values)) in enumerate(drawn.items()):
        color = PALETTE[i % len(PALETTE)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(frame.px(steps).tolist(), frame.py(values).tolist(), strict=True))
        if len(steps) == 1:
            body.append(f'<circle cx="{points.split(",")[0]}" cy="{points.split(",")[1]}" r="3" fill="{color}"/>')
        else:
            body.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"><title>{escape(name)}</title></polyline>')
        if len(drawn) <= MAX_LEGEND:
            right, top = frame.box[2], frame.box[1]
            body.append(f'<rect x="{right - 150}" y="{top + 6 + 14 * i}" width="10" height="3" fill="{color}"/>'
                        f'<text x="{right - 136}" y="{top + 11 + 14 * i}">{escape(name)}</text>')
    return _svg(width, height, title, body)


def decision_map(classes: np.ndarray, extent: tuple[float, float, float, float], X: np.ndarray, labels: np.ndarray,
                 title: str = "Decision boundary", size: int = 420) -> str:
    """`classes` (rows × columns over `extent` = x0, x1, y0, y1, row 0 at y0) as coloured cells, and the
    points `X` coloured by `labels` on top. Cells of one class next to each other in a row are one rectangle."""
    frame = _Frame(size, size, extent[:2], extent[2:], log_y=False)
    rows, cols = classes.shape
    xs = frame.px(np.linspace(extent[0], extent[1], cols + 1))
    ys = frame.py(np.linspace(extent[2], extent[3], rows + 1))
    body = []
    for r in range(rows):
        row = classes[r]
        start = 0
        for c in range(1, cols + 1):
            if c == cols or row[c] != row[start]:
                color = PALETTE[int(row[start]) % len(PALETTE)]
                body.append(f'<rect x="{xs[start]:.1f}" y="{ys[r + 1]:.1f}" width="{xs[c] - xs[start]:.1f}" '
                            f'height="{ys[r] - ys[r + 1]:.1f}" fill="{color}" fill-opacity="0.25"/>')
                start = c
    for (x, y), label in zip(X.tolist(), labels.tolist(), strict=True):
        body.append(f'<circle cx="{float(frame.px(np.array(x))):.1f}" cy="{float(frame.py(np.array(y))):.1f}" r="3" '
                    f'fill="{PALETTE[int(label) % len(PALETTE)]}" stroke="black" stroke-width="0.5"/>')
    return _svg(size, size, title, body + frame.axes("x₁", "x₂"))


def scatter_chart(points: dict[str, tuple[np.ndarray, np.ndarray]], title: str, x_label: str, y_label: str,
                  width: int = 420, height: int = 300) -> str | None:
    """Points (x, y) per series, each its own colour; None when there is nothing finite to draw."""
    drawn = {name: (np.asarray(x, float), np.asarray(y, float)) for name, (x, y) in points.items()}
    drawn = {name: (x[keep], y[keep]) for name, (x, y) in drawn.items() if (keep := np.isfinite(x) & np.isfinite(y)).any()}
    if not drawn:
        return None
    xs = np.concatenate([x for x, _ in drawn.values()])
    ys = np.concatenate([y for _, y in drawn.values()])
    frame = _Frame(width, height, (float(xs.min()), float(xs.max())), (float(ys.min()), float(ys.max())), log_y=False)
    body = frame.axes(x_label, y_label)
    for i, (name, (x, y)) in enumerate(drawn.items()):
        color = PALETTE[i % len(PALETTE)]
        for px, py in zip(frame.px(x).tolist(), frame.py(y).tolist(), strict=True):
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}" fill-opacity="0.8"><title>{escape(name)}</title></circle>')
    return _svg(width, height, title, body)


def parallel_coordinates(axes: list[str], rows: list[list[float]], title: str, width: int = 720, height: int = 320) -> str | None:
    """One polyline per row across one vertical axis per column (each scaled to its own range); the last
    column (the objective) colours the lines, best (lowest) blue to worst red."""
    table = np.array(rows, dtype=float)
    if table.size == 0 or table.ndim != 2 or table.shape[1] < 2:
        return None
    left, right, top, bottom = 60, width - 60, 40, height - 40
    xs = np.linspace(left, right, table.shape[1])
    low, high = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (table - low) / span
    objective = scaled[:, -1]
    body = []
    for x, name, lo, hi in zip(xs.tolist(), axes, low.tolist(), high.tolist(), strict=True):
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#999"/>'
                    f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(name)}</text>'
                    f'<text x="{x:.1f}" y="{top - 6}" text-anchor="middle">{_label(hi)}</text>'
                    f'<text x="{x:.1f}" y="{bottom + 30}" text-anchor="middle" fill="#777">{_label(lo)}</text>')
    for row, score in zip(scaled.tolist(), objective.tolist(), strict=True):
        if any(map(math.isnan, row)):
            continue
        points = " ".join(f"{x:.1f},{bottom - v * (bottom - top):.1f}" for x, v in zip(xs.tolist(), row, strict=True))
        red, blue = int(40 + 200 * score), int(40 + 200 * (1 - score))
        body.append(f'<polyline points="{points}" fill="none" stroke="rgb({red},60,{blue})" stroke-opacity="0.7" stroke-width="1.5"/>')
    return _svg(width, height, title, body)
