"""Charts as SVG text, drawn on the server: nothing to fetch, no JavaScript, a millisecond each.

`line_chart` draws series against steps (log y axis on request; long series downsampled with their
spikes kept; step series smoothed on request, TensorBoard's way, with the raw series faint behind);
`scatter_chart` and `parallel_coordinates` draw a sweep's jobs, numeric and categorical values alike;
`decision_map` draws a 2-D classifier's decision over a grid with the data on top. The MLflow worker
stores them as run artifacts; the pages can serve them as they are.
"""

from __future__ import annotations

import json
import math
from xml.sax.saxutils import escape

import numpy as np

from services.store.metrics import downsample

Series = dict[str, tuple[np.ndarray, np.ndarray]]
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_POINTS = 2000  # per series; each bucket keeps its first, min, max and last point
MAX_LEGEND = 12
MARK_COLORS = {"info": "#1f77b4", "warning": "#e69500", "error": "#d62728", "fork": "#444"}
LOG_DECADES_SHOWN = 1e12  # a log axis spans at most this factor below its largest value; smaller values sit on its floor
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
    if float(value).is_integer() and abs(value) < 1e7:
        return f"{int(value):,}"  # steps and counts: 2,000, not 2e+03
    return f"{value:.3g}"


def _log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [10**low, 10**high]: powers of ten when it spans three decades or
    more (every few when it spans many), 1-2-5 within fewer, round linear values within one."""
    decades = high - low
    if decades >= 3:
        every = max(1, math.ceil(decades / 8))
        return [10.0 ** e for e in range(math.ceil(low), math.floor(high) + 1) if e % every == 0]
    if decades >= 1:
        return [m * 10.0 ** e for e in range(math.floor(low), math.ceil(high) + 1) for m in (1, 2, 5)
                if low - 1e-9 <= math.log10(m) + e <= high + 1e-9]
    return [t for t in _ticks(10.0 ** low, 10.0 ** high) if t > 0] or [10.0 ** low]


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average debiased for its start (so the first
    points are not pulled towards zero); non-finite values pass through and do not enter the average,
    and a constant series stays exactly itself (as TensorBoard keeps it)."""
    if weight <= 0 or values.size == 0 or np.all(values == values[0]):
        return values
    out = values.astype(float).copy()
    last, count = 0.0, 0
    finite = np.isfinite(out).tolist()
    listed = out.tolist()
    for i, value in enumerate(listed):
        if finite[i]:
            last = last * weight + (1 - weight) * value
            count += 1
            listed[i] = last / (1 - weight ** count)
    return np.array(listed)


class Frame:
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

    def axes(self, x_label: str, y_label: str, x_ticks: list[tuple[float, str]] | None = None) -> list[str]:
        """The box, ticks (`x_ticks`: positions and labels, as a categorical axis has them) and labels."""
        left, top, right, bottom = self.box
        out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="#999"/>']
        for x, text in x_ticks if x_ticks is not None else [(x, _label(x)) for x in _ticks(self.x0, self.x1)]:
            px = float(self.px(np.array(x)))
            out.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#999"/>'
                       f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle" class="tick">{escape(text)}</text>')
        y_ticks = _log_ticks(self.y0, self.y1) if self.log_y else _ticks(self.y0, self.y1)
        for y in y_ticks:
            py = float(self.py(np.array(y)))
            out.append(f'<line x1="{left - 4}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#eee"/>'
                       f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" class="y-tick">{_label(y)}</text>')
        out.append(f'<text x="{(left + right) / 2}" y="{self.height - 6}" text-anchor="middle">{escape(x_label)}</text>'
                   f'<text transform="translate(12,{(top + bottom) / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
        return out


def svg_document(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>'
            f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>{"".join(body)}</svg>')


def _marks(frame: Frame, marks: list[tuple[int, str, str]]) -> list[str]:
    """Dashed vertical lines at steps (a diagnosis's start; a fork's step, labelled with its text), those inside the frame."""
    left, top, right, bottom = frame.box
    out = []
    for step, text, severity in marks:
        x = float(frame.px(np.array(float(step))))
        if left <= x <= right:
            color = MARK_COLORS.get(severity, "#777")
            fork = severity == "fork"
            title = f"{text} at step {step}" if fork else text
            out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="{color}" stroke-dasharray="5 3" '
                       f'stroke-width="1.5" class="{"fork" if fork else f"diagnosis {escape(severity)}"}"><title>{escape(title)}</title></line>')
            if fork:
                out.append(f'<text x="{x + 3:.1f}" y="{top + 12}" fill="{color}" class="fork-label">{escape(text)}</text>')
    return out


def line_chart(series: Series, title: str, x_label: str = "step", y_label: str = "", log_y: bool = False,
               y_range: tuple[float, float] | None = None, width: int = 640, height: int = 360, smoothing: float = 0.0,
               on_top: tuple[str, ...] = (), max_points: int = MAX_POINTS, marks: list[tuple[int, str, str]] = (),
               reference: float | None = None) -> str | None:
    """Each series a line against its steps; None when there is nothing to draw.

    With `smoothing` (0 ≤ w < 1) the series not in `on_top` are drawn smoothed, each over its raw self
    drawn faint; the `on_top` ones (epoch-level figures) are drawn last, thicker, with their points
    marked, so a noisy step series cannot hide them. The legend follows the order of `series`. `marks`:
    (step, text, severity) drawn as dashed vertical lines (a job's diagnoses, where each began; severity `fork`: where a
    fork leaves its parent, labelled with the text); `reference`,
    a value drawn as a dashed horizontal line and kept in view (sharpness × η's 2)."""
    drawn, raw = {}, {}
    for name, (steps, values) in series.items():
        steps, values = np.asarray(steps), np.asarray(values, dtype=float)
        smoothed = smooth(values, smoothing) if smoothing > 0 and name not in on_top else None
        keep = np.isfinite(values) & ((values > 0) if log_y else True)
        if smoothed is not None:
            keep &= (smoothed > 0) if log_y else True
        if np.count_nonzero(keep):
            if smoothed is not None:
                raw[name] = downsample(steps[keep], values[keep], max_points)
                drawn[name] = downsample(steps[keep], smoothed[keep], max_points)
            else:
                drawn[name] = downsample(steps[keep], values[keep], max_points)
    if not drawn:
        return None
    everything = [*drawn.values(), *raw.values()]
    xs = np.concatenate([s for s, _ in everything])
    ys = np.concatenate([v for _, v in everything] + ([np.array([reference])] if reference is not None else []))
    floor = None
    if log_y and y_range is None and ys.min() < ys.max() / LOG_DECADES_SHOWN:  # an underflowed loss (1e-300) would flatten the rest
        floor = float(ys.max()) / LOG_DECADES_SHOWN
        drawn = {n: (s, np.maximum(v, floor)) for n, (s, v) in drawn.items()}
        raw = {n: (s, np.maximum(v, floor)) for n, (s, v) in raw.items()}
        ys = np.maximum(ys, floor)
    frame = Frame(width, height, (float(xs.min()), float(xs.max())), y_range or (float(ys.min()), float(ys.max())), log_y)
    body = frame.axes(x_label, y_label)
    if floor is not None:
        body.append(f'<text x="{frame.box[0] + 4}" y="{frame.box[3] - 4}" fill="#777" class="floor">values below {_label(floor)} '
                    'drawn on the axis</text>')
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(drawn)}
    left, _, right, _ = frame.box
    if reference is not None:
        y = float(frame.py(np.array(reference)))
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#d62728" stroke-dasharray="6 4" class="reference">'
                    f'<title>{_label(reference)}</title></line>')
    body.extend(_marks(frame, marks))

    def path(steps: np.ndarray, values: np.ndarray) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(frame.px(steps).tolist(), frame.py(values).tolist(), strict=True))

    for name, (steps, values) in raw.items():
        body.append(f'<polyline points="{path(steps, values)}" fill="none" stroke="{colors[name]}" stroke-opacity="0.25" '
                    f'stroke-width="1" class="raw"><title>{escape(name)} (raw)</title></polyline>')
    order = [n for n in drawn if n not in on_top] + [n for n in drawn if n in on_top]
    for name in order:
        steps, values = drawn[name]
        color, emphasised = colors[name], name in on_top
        kind = "epoch" if emphasised else "smoothed" if name in raw else "series"
        if len(steps) == 1:
            x, y = float(frame.px(steps)[0]), float(frame.py(values)[0])
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}" class="{kind}"><title>{escape(name)}</title></circle>')
            continue
        body.append(f'<polyline points="{path(steps, values)}" fill="none" stroke="{color}" stroke-width="{2.5 if emphasised else 1.5}" '
                    f'class="{kind}"><title>{escape(name)}</title></polyline>')
        if emphasised and len(steps) <= 60:
            body.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}" stroke="white" stroke-width="0.8"/>'
                        for x, y in zip(frame.px(steps).tolist(), frame.py(values).tolist(), strict=True))
    if len(drawn) <= MAX_LEGEND:  # below the chart, one name a line: long names (a sweep's jobs) stay whole and off the lines
        for i, name in enumerate(drawn):
            label = f"{name} (smoothed {smoothing:g})" if name in raw else name
            y = height + 4 + 15 * i
            body.append(f'<rect x="{MARGIN[0]}" y="{y - 5}" width="14" height="{4 if name in on_top else 3}" fill="{colors[name]}"/>'
                        f'<text x="{MARGIN[0] + 20}" y="{y}" class="legend">{escape(label)}</text>')
        return svg_document(width, height + 8 + 15 * len(drawn), title, body)
    return svg_document(width, height, title, body)


def decision_map(classes: np.ndarray, extent: tuple[float, float, float, float], X: np.ndarray, labels: np.ndarray,
                 title: str = "Decision boundary", size: int = 420) -> str:
    """`classes` (rows × columns over `extent` = x0, x1, y0, y1, row 0 at y0) as coloured cells, and the
    points `X` coloured by `labels` on top. Cells of one class next to each other in a row are one rectangle."""
    frame = Frame(size, size, extent[:2], extent[2:], log_y=False)
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
    body += frame.axes("x₁", "x₂")  # under the points, so no grid line strikes one through
    for (x, y), label in zip(X.tolist(), labels.tolist(), strict=True):
        body.append(f'<circle cx="{float(frame.px(np.array(x))):.1f}" cy="{float(frame.py(np.array(y))):.1f}" r="3" '
                    f'fill="{PALETTE[int(label) % len(PALETTE)]}" stroke="black" stroke-width="0.5"/>')
    return svg_document(size, size, title, body)


def category_label(value: object) -> str:
    """A categorical value as an axis shows it: strings as they are, anything else as JSON (`1`, `true`)."""
    return value if isinstance(value, str) else json.dumps(value)


def scatter_chart(points: dict[str, tuple[np.ndarray, np.ndarray]], title: str, x_label: str, y_label: str,
                  width: int = 420, height: int = 300, categories: list[str] | None = None,
                  missing: list[float] | None = None, log_y: bool = False,
                  curve: tuple[np.ndarray, np.ndarray, str] | None = None) -> str | None:
    """Points (x, y) per series, each its own colour; None when there is nothing to draw.

    With `categories`, x is an index into them (fractions between spread the seeds of one value apart)
    and the axis names them. `missing` are the x of jobs without a y (diverged, failed): each drawn as
    a grey cross along the top edge, so every ended job has a mark. `curve` (x, y, label): a reference
    drawn dashed across the points' x range (2/η under a sweep's sharpness); with `log_y`, y is on a log axis."""
    drawn = {name: (np.asarray(x, float), np.asarray(y, float)) for name, (x, y) in points.items()}
    drawn = {name: (x[keep], y[keep]) for name, (x, y) in drawn.items()
             if (keep := np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)).any()}
    missing = [x for x in missing or [] if math.isfinite(x)]
    if not drawn and not missing:
        return None
    xs = np.concatenate([x for x, _ in drawn.values()] + [np.array(missing, float)])
    ys = np.concatenate([y for _, y in drawn.values()]) if drawn else np.array([0.5, 1.0])
    x_range = (-0.5, len(categories) - 0.5) if categories else (float(xs.min()), float(xs.max()))
    if curve is not None:  # kept in view over the points' x range
        inside = (curve[0] >= x_range[0]) & (curve[0] <= x_range[1]) & np.isfinite(curve[1]) & ((curve[1] > 0) if log_y else True)
        ys = np.concatenate([ys, curve[1][inside]])
    frame = Frame(width, height, x_range, (float(ys.min()), float(ys.max())), log_y=log_y)
    body = frame.axes(x_label, y_label, x_ticks=list(enumerate(categories)) if categories else None)
    if curve is not None and inside.any():
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(frame.px(curve[0][inside]).tolist(), frame.py(curve[1][inside]).tolist(),
                                                           strict=True))
        body.append(f'<polyline points="{line}" fill="none" stroke="#d62728" stroke-dasharray="6 4" class="reference">'
                    f'<title>{escape(curve[2])}</title></polyline>'
                    f'<text x="{frame.box[2] - 4}" y="{frame.box[1] + 14}" text-anchor="end" fill="#d62728">{escape(curve[2])}</text>')
    for i, (name, (x, y)) in enumerate(drawn.items()):
        color = PALETTE[i % len(PALETTE)]
        for px, py in zip(frame.px(x).tolist(), frame.py(y).tolist(), strict=True):
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}" fill-opacity="0.8" class="mark">'
                        f'<title>{escape(name)}</title></circle>')
    top = frame.box[1] + 6
    for px in frame.px(np.array(missing, float)).tolist():
        body.append(f'<path d="M{px - 4:.1f},{top - 4} l8,8 m0,-8 l-8,8" stroke="#777" stroke-width="1.5" class="mark missing">'
                    '<title>no objective (diverged or failed)</title></path>')
    return svg_document(width, height, title, body)


def parallel_coordinates(axes: list[str], rows: list[list[float]], title: str, width: int = 720, height: int = 320,
                         categories: dict[int, list[str]] | None = None) -> str | None:
    """One polyline per row across one vertical axis per column (each scaled to its own range); the last
    column (the objective) colours the lines, best (lowest) blue to worst red. A column in `categories`
    holds indices into its labels, spread evenly along its axis and each named. A row whose objective
    is NaN (a job that diverged) is drawn grey and dashed, ending above the axis."""
    table = np.array(rows, dtype=float)
    if table.size == 0 or table.ndim != 2 or table.shape[1] < 2:
        return None
    categories = categories or {}
    left, right, top, bottom = 60, width - 60, 48, height - 40
    xs = np.linspace(left, right, table.shape[1])
    with np.errstate(all="ignore"):
        low = np.array([0.0 if j in categories else np.nanmin(col) if np.isfinite(col).any() else 0.0 for j, col in enumerate(table.T)])
        high = np.array([max(len(categories[j]) - 1, 1) if j in categories else np.nanmax(col) if np.isfinite(col).any() else 1.0
                         for j, col in enumerate(table.T)])
    span = np.where(high > low, high - low, 1.0)
    scaled = (table - low) / span
    for j, labels in categories.items():
        if len(labels) == 1:
            scaled[:, j] = 0.5
    body, labels = [], []  # the categories' labels go over the lines
    for j, (x, name, lo, hi) in enumerate(zip(xs.tolist(), axes, low.tolist(), high.tolist(), strict=True)):
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#999"/>'
                    f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(name)}</text>')
        if j in categories:
            for k, label in enumerate(categories[j]):
                y = bottom - (0.5 if len(categories[j]) == 1 else k / span[j]) * (bottom - top)
                labels.append(f'<text x="{x + 6:.1f}" y="{y + 4:.1f}" class="category" font-weight="bold" stroke="white" stroke-width="3" '
                              f'paint-order="stroke">{escape(label)}</text>')
        else:
            body.append(f'<text x="{x:.1f}" y="{top - 6}" text-anchor="middle">{_label(hi)}</text>'
                        f'<text x="{x:.1f}" y="{bottom + 30}" text-anchor="middle" fill="#777">{_label(lo)}</text>')
    for row in scaled.tolist():
        if any(map(math.isnan, row[:-1])):
            continue
        failed = math.isnan(row[-1])
        values = [*row[:-1], 1.12] if failed else row
        points = " ".join(f"{x:.1f},{bottom - v * (bottom - top):.1f}" for x, v in zip(xs.tolist(), values, strict=True))
        if failed:
            body.append(f'<polyline points="{points}" fill="none" stroke="#888" stroke-dasharray="4 3" stroke-width="1.2" class="job">'
                        '<title>no objective (diverged or failed)</title></polyline>')
            continue
        red, blue = int(40 + 200 * row[-1]), int(40 + 200 * (1 - row[-1]))
        body.append(f'<polyline points="{points}" fill="none" stroke="rgb({red},60,{blue})" stroke-opacity="0.7" stroke-width="1.5" '
                    'class="job"/>')
    return svg_document(width, height, title, body + labels)
