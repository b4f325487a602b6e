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


def test_smoothing_is_tensorboards_debiased_moving_average():
    values = np.array([1.0, 3.0, np.nan, 2.0])
    w = 0.6
    # TensorBoard's rule by hand: last = last·w + (1 − w)·v, shown as last / (1 − w^count); NaN passes through
    first = (1 - w) * 1.0
    second = first * w + (1 - w) * 3.0
    third = second * w + (1 - w) * 2.0
    expected = [first / (1 - w), second / (1 - w**2), np.nan, third / (1 - w**3)]
    np.testing.assert_allclose(charts.smooth(values, w), expected, rtol=1e-15)
    np.testing.assert_array_equal(charts.smooth(values, 0.0), values)
    assert charts.smooth(np.full(5, 7.0), 0.99).tolist() == [7.0] * 5  # a constant stays itself (debiased)


def test_a_smoothed_chart_keeps_the_raw_series_faint_and_draws_epoch_series_on_top():
    rng = np.random.default_rng(0)
    steps = np.arange(3000)
    noisy = 1 / (1 + steps / 300) + rng.uniform(0, 1, 3000)
    epochs = (steps[149::150], 1 / (1 + steps[149::150] / 300))
    root = ET.fromstring(charts.line_chart({"loss": (steps, noisy), "val_loss": epochs}, "Loss", smoothing=0.9, on_top=("val_loss",)))
    lines = root.findall(f"{SVG}polyline")
    assert [(line.get("class"), line.find(f"{SVG}title").text) for line in lines] == [
        ("raw", "loss (raw)"), ("smoothed", "loss"), ("epoch", "val_loss")]  # raw behind, the epoch series last
    raw, smoothed = ([float(p.split(",")[1]) for p in line.get("points").split()] for line in lines[:2])
    assert np.std(np.diff(smoothed)) < np.std(np.diff(raw)) / 3  # the smoothed path is another, calmer path
    assert len(root.findall(f"{SVG}circle")) == len(epochs[0])  # each epoch's point marked


def test_log_axes_have_enough_ticks():
    for low, high, at_least in ((0.05, 0.9, 3), (0.001, 0.5, 4), (1e-9, 1e3, 5)):
        root = ET.fromstring(charts.line_chart({"g": (np.arange(2), np.array([low, high]))}, "g", log_y=True))
        assert len([t for t in root.findall(f"{SVG}text") if t.get("class") == "y-tick"]) >= at_least, (low, high)


def test_categorical_values_are_drawn_as_categories_and_every_ended_job_is_a_mark():
    svg = charts.scatter_chart({"val_loss": (np.array([0, 0.1, 1, 1.1]), np.array([0.3, 0.4, 0.2, 0.25]))}, "val_loss against batch_size",
                               "batch_size", "val_loss", categories=["1", "full"], missing=[1.0])
    root = ET.fromstring(svg)
    assert len([m for m in root.iter() if "mark" in (m.get("class") or "")]) == 5  # four objectives, one diverged job
    assert [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "tick"] == ["1", "full"]
    parallel = ET.fromstring(charts.parallel_coordinates(["lr", "batch_size", "val_loss"],
                                                         [[0.1, 0, 0.3], [0.1, 1, 0.2], [1.0, 1, float("nan")]], "p",
                                                         categories={1: ["1", "full"]}))
    assert len(parallel.findall(f"{SVG}polyline")) == 3  # the NaN objective is drawn too (dashed)
    assert [t.text for t in parallel.findall(f"{SVG}text") if t.get("class") == "category"] == ["1", "full"]
