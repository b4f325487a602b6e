"""A loss landscape as SVG: the grid's loss as coloured cells on a log scale, contour lines at
log-spaced levels (contourpy's marching squares, as matplotlib draws them), and the path the
weights took on top, from its start to the step the plane goes through and on to the run's end."""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

import contourpy
import numpy as np

from .svg import Frame, svg_document

# viridis at nine stops (low loss dark blue, high loss yellow): readable in grey and to most colour-blind eyes
RAMP = ((68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128), (94, 201, 98),
        (173, 220, 48), (253, 231, 37))
LEVELS = 12
SIZE = 480


def _color(t: float) -> str:
    """The ramp's colour at t in [0, 1]."""
    t = min(max(t, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(t), len(RAMP) - 2)
    f = t - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(RAMP[i], RAMP[i + 1], strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def contour_chart(landscape: dict[str, Any], title: str) -> str:
    """The landscape answer (routes/landscape.py's `Landscape`) drawn: cells, contours, path, colour bar."""
    alpha, beta = np.asarray(landscape["alpha"], float), np.asarray(landscape["beta"], float)
    loss = np.array([[math.nan if v is None else v for v in row] for row in landscape["loss"]], float)
    finite = np.isfinite(loss) & (loss > 0)
    logged = np.where(finite, np.log10(np.where(finite, loss, 1.0)), math.nan)
    low, high = (float(np.nanmin(logged)), float(np.nanmax(logged))) if finite.any() else (0.0, 1.0)
    high = high if high > low else low + 1.0
    frame = Frame(SIZE, SIZE, (float(alpha[0]), float(alpha[-1])), (float(beta[0]), float(beta[-1])), log_y=False)
    xs, ys = frame.px(_edges(alpha)), frame.py(_edges(beta))
    body = []
    for j in range(len(beta)):
        for i in range(len(alpha)):
            fill = _color((logged[j, i] - low) / (high - low)) if finite[j, i] else "#d9d9d9"
            body.append(f'<rect x="{xs[i]:.1f}" y="{ys[j + 1]:.1f}" width="{xs[i + 1] - xs[i] + 0.3:.1f}" height="{ys[j] - ys[j + 1] + 0.3:.1f}" '
                        f'fill="{fill}" shape-rendering="crispEdges"/>')
    body += _contours(frame, alpha, beta, logged, low, high)
    directions = landscape["directions"]
    eig = landscape.get("eigenvalues") or []
    names = [f"d{sub} (λ = {_fmt(eig[k])})" if directions == "top" and len(eig) > k else f"d{sub}" for k, sub in enumerate("₁₂")]
    body += frame.axes(f"α along {names[0]}", f"β along {names[1]}")
    body += _path(frame, landscape)
    body += _colour_bar(low, high)
    note = (f"{directions} directions · {landscape['samples']:,} training rows · span ±{_fmt(landscape['span'])} · "
            f"grey: loss not finite" + (f" · computed in {landscape['seconds']:.2g} s" if landscape.get("seconds") is not None else ""))
    body.append(f'<text x="{SIZE / 2}" y="{SIZE + 14}" text-anchor="middle" fill="#555" class="note">{escape(note)}</text>')
    return svg_document(SIZE + 90, SIZE + 22, title, body)


def _edges(axis: np.ndarray) -> np.ndarray:
    """Cell edges around grid points: midway between them, half a cell beyond the ends."""
    half = (axis[1] - axis[0]) / 2 if len(axis) > 1 else 0.5
    return np.concatenate([[axis[0] - half], (axis[:-1] + axis[1:]) / 2, [axis[-1] + half]])


def _contours(frame: Frame, alpha: np.ndarray, beta: np.ndarray, logged: np.ndarray, low: float, high: float) -> list[str]:
    z = np.ma.masked_invalid(logged)
    generator = contourpy.contour_generator(alpha, beta, z, line_type=contourpy.LineType.Separate)
    out = []
    for level in np.linspace(low, high, LEVELS + 2)[1:-1]:
        for line in generator.lines(float(level)):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(frame.px(line[:, 0]).tolist(), frame.py(line[:, 1]).tolist(), strict=True))
            out.append(f'<polyline points="{points}" fill="none" stroke="white" stroke-opacity="0.7" stroke-width="0.8" class="contour">'
                       f'<title>loss {_fmt(10 ** level)}</title></polyline>')
    return out


def _path(frame: Frame, landscape: dict[str, Any]) -> list[str]:
    path = landscape["path"]
    if not path:
        return []
    left, top, right, bottom = frame.box
    px = np.clip(frame.px(np.array([p["alpha"] for p in path])), left, right)
    py = np.clip(frame.py(np.array([p["beta"] for p in path])), top, bottom)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(px.tolist(), py.tolist(), strict=True))
    out = [f'<polyline points="{points}" fill="none" stroke="#d62728" stroke-width="2" class="path"><title>the weights\' path, '
           f'projected</title></polyline>']
    for k, (p, x, y) in enumerate(zip(path, px.tolist(), py.tolist(), strict=True)):
        loss = "not finite" if p["loss"] is None else _fmt(p["loss"])
        tip = escape(f"step {p['step']:,}: loss {loss}, {_fmt(p['off_plane'])} off the plane")
        if p["step"] == landscape["step"]:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="none" stroke="black" stroke-width="2.5" class="at-step">'
                       f'<title>{tip} (the plane goes through it)</title></circle>')
        elif k in (0, len(path) - 1):
            kind = "start" if k == 0 else "end"
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{"white" if k == 0 else "#d62728"}" stroke="#d62728" '
                       f'stroke-width="2" class="{kind}"><title>{tip} ({kind})</title></circle>'
                       f'<text x="{x + 8:.1f}" y="{y - 6:.1f}" fill="white" stroke="black" stroke-width="2.5" paint-order="stroke" '
                       f'font-weight="bold">{kind}</text>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="#d62728" class="step"><title>{tip}</title></circle>')
    return out


def _colour_bar(low: float, high: float) -> list[str]:
    x, top, height = SIZE + 10, 36, SIZE - 80
    out = [f'<text x="{x}" y="{top - 8}" class="bar-title">loss</text>']
    steps = 40
    for k in range(steps):
        t = 1 - k / steps
        out.append(f'<rect x="{x}" y="{top + k * height / steps:.1f}" width="14" height="{height / steps + 0.5:.1f}" fill="{_color(t)}"/>')
    for k in range(5):
        t = k / 4
        value = 10 ** (low + t * (high - low))
        out.append(f'<text x="{x + 18}" y="{top + (1 - t) * height + 4:.1f}" class="bar-tick">{_fmt(value)}</text>')
    return out
