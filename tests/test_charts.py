"""SVG charts drawn on the server: well-formed, every series drawn, log axes skip what they cannot show."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from services.charts import svg as charts

SVG = "{http://www.w3.org/2000/svg}"


def test_a_line_chart_draws_every_series_and_keeps_spikes():
    steps = np.arange(10_000)
    values = np.ones(10_000)
    values[4321] = 50.0
    svg = charts.line_chart({"loss": (steps, values), "val_loss": (steps[::100], values[::100] / 2)}, "Loss <&>", y_label="loss")
    root = ET.fromstring(svg)
    lines = root.findall(f"{SVG}polyline")
    assert [line.find(f"{SVG}title").text for line in lines] == ["loss", "val_loss"]
    ys = [float(p.split(",")[1]) for p in lines[0].get("points").split()]
    assert len(ys) <= charts.MAX_POINTS and min(ys) < max(ys) - 200  # the spike survived downsampling
    assert "Loss &lt;&amp;&gt;" in svg


def test_a_log_chart_leaves_out_what_a_log_axis_cannot_show():
    assert charts.line_chart({"g": (np.arange(3), np.array([0.0, -1.0, np.nan]))}, "g", log_y=True) is None
    svg = charts.line_chart({"g": (np.arange(4), np.array([1e-3, 0.0, 1e-1, 10.0]))}, "g", log_y=True)
    assert len(ET.fromstring(svg).find(f"{SVG}polyline").get("points").split()) == 3


def test_a_decision_map_merges_cells_and_draws_the_points():
    classes = np.zeros((40, 40))
    classes[:, 20:] = 1
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    root = ET.fromstring(charts.decision_map(classes, (-1, 2, -1, 2), X, np.array([0, 1])))
    cells = [r for r in root.findall(f"{SVG}rect") if r.get("fill-opacity")]
    assert len(cells) == 80  # two runs per row, not 1,600 cells
    assert len(root.findall(f"{SVG}circle")) == 2
