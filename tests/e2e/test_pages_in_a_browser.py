"""The pages as a person meets them: served by the API's own server, opened in headless Chromium
against a live stack (workers training), with no error on the console. The job page draws the
spec's network and, at step 0 of the post's example, the post's δ and ∂L/∂W as REST's trace gives
them; a running job's chart grows while it trains; a sweep's page lists every point; the compare page
overlays runs. Screenshots of each page go to var/screenshots/."""

from __future__ import annotations

import re
import time

import pytest

from tests.support.browser import chromium, console_errors, screenshot
from tests.support.specs import SEED, moons
from tests.support.waiting import wait_status, wait_sweep

TIMEOUT = 30


def _ready(browser, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, TIMEOUT).until(lambda b: b.execute_script("return window.pageReady === true"))


def _attributes(browser, selector: str, name: str) -> list[str | None]:
    """An attribute of every element matched, read in one go (a redraw cannot leave a stale element)."""
    return browser.execute_script("return [...document.querySelectorAll(arguments[0])].map((e) => e.getAttribute(arguments[1]))",
                                  selector, name)


def _number(text: str) -> float:
    return float(text.split()[-1])


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_job_page_draws_the_posts_network_and_its_step_0(stack, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    spec = {**SEED, "name": "the post's example", "steps": 3, "record": {**SEED["record"], "trace": True}}  # traced at 0, 1, 2
    with stack.client() as api:
        job = api.post("/api/v1/jobs", json=spec).json()
        wait_status(api, job["id"], {"succeeded"})
        trace = api.get(f"/api/v1/jobs/{job['id']}/trace", params={"step": 0}).json()
    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        units = browser.find_elements(By.CSS_SELECTOR, "#network-svg circle.unit")
        edges = browser.find_elements(By.CSS_SELECTOR, "#network-svg line.edge")
        assert len(units) == 2 + 2 + 1 and len(edges) == 2 * 2 + 2 * 1  # the spec's 2-2-1 network
        slider = browser.find_element(By.ID, "step")
        slider.send_keys(Keys.END)
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.find_element(By.ID, "trace").text.startswith("Step 2"))
        assert browser.find_element(By.ID, "delta-2-0").text != "δ 0.5364"  # a later step: other values
        slider.send_keys(Keys.HOME)  # back to the post's step 0
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.find_element(By.ID, "trace").text.startswith("Step 0"))
        assert browser.find_element(By.ID, "step-label").text == "step 0"
        for number, layer in enumerate(trace["layers"], start=1):
            for u, delta in enumerate(layer["delta"][0]):
                shown = _number(browser.find_element(By.ID, f"delta-{number}-{u}").text)
                assert shown == pytest.approx(delta, rel=1e-3, abs=1e-4), (number, u)
            for o, row in enumerate(layer["dW"]):
                for i, value in enumerate(row):
                    shown = _number(browser.find_element(By.ID, f"dw-{number}-{o}-{i}").text)
                    assert shown == pytest.approx(value, rel=1e-2, abs=1e-3), (number, o, i)
        # the post's printed figures: δ₂ = 0.5364 at the output, ∂L/∂W2 = [0.1770, 0.0697]
        assert browser.find_element(By.ID, "delta-2-0").text == "δ 0.5364"
        assert browser.find_element(By.ID, "dw-2-0-0").text == "∂W 0.177"
        assert "Output error signal" in browser.find_element(By.ID, "trace").text
        charts = browser.execute_script("return [...document.querySelectorAll('#charts figure:not([hidden])')].map((f) => f.dataset.chart)")
        # read in one go (the slider's redraw replaces them), in the page's fixed order whatever order they were answered in
        assert charts == ["loss", "gradient_norms", "update_ratios", "dead_units", "vanishing_ratio", "decision_boundary"]
        fields = [r.get_attribute("data-field") for r in browser.find_elements(By.CSS_SELECTOR, "#summary tr")]
        assert fields[:5] == ["status", "progress", "experiment", "created", "model_train_loss"]  # the model's own figures lead
        assert fields.count("final_loss") == 1 and "best_loss" not in fields
        screenshot(browser, "job-page")
        assert console_errors(browser) == []
    with chromium(downloads=tmp_path) as browser:  # the page's model link saves a file ONNX Runtime runs as /predict answers
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a[id^=model-]")] == ["ONNX", "safetensors", "npz"]
        browser.find_element(By.ID, "model-onnx").click()
        saved = tmp_path / f"job-{job['id']}.onnx"
        WebDriverWait(browser, TIMEOUT).until(lambda _b: saved.exists() and saved.stat().st_size > 0)
        assert console_errors(browser) == []
    import numpy as np
    import onnxruntime

    outputs = onnxruntime.InferenceSession(str(saved)).run(None, {"x": np.array([[0.5, 0.1]])})[0]
    with stack.client() as api:
        expected = api.post(f"/api/v1/jobs/{job['id']}/predict", json={"X": [[0.5, 0.1]]}).json()["outputs"]
    assert np.abs(outputs - np.array(expected)).max() <= 1e-12


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_running_jobs_chart_grows_while_it_trains(stack):
    from selenium.webdriver.common.by import By

    spec = moons(epochs=50_000, record={"every": 20, "gradients": "none"})  # 400,000 steps: it trains while the page watches
    with stack.client() as api:
        job = api.post("/api/v1/jobs", json=spec).json()
        wait_status(api, job["id"], {"running"})
        while api.get(f"/api/v1/jobs/{job['id']}/metrics/keys").json()["keys"] == []:
            time.sleep(0.1)
        try:
            with chromium() as browser:
                _ready(browser, f"{stack.url}/jobs/{job['id']}")

                def drawn_points() -> int:  # read in one go: the chart is redrawn every second while it trains
                    points = _attributes(browser, '#charts figure[data-chart="loss"] polyline', "points")
                    return len(points[0].split()) if points and points[0] else 0

                first = drawn_points()
                deadline = time.monotonic() + TIMEOUT
                while drawn_points() <= first:
                    assert time.monotonic() < deadline, "the loss chart did not grow"
                    time.sleep(0.3)
                assert re.match(r"training: step [\d,]+/400,000", browser.find_element(By.ID, "status").text)
                # one source for the step: the header's and the summary table's agree (read in one go)
                header, table = browser.execute_script(
                    "return [document.querySelector('#status').textContent, document.querySelector('#progress-steps').textContent]")
                assert re.search(r"step ([\d,]+)/", header).group(1) == table.split("/")[0], (header, table)
                screenshot(browser, "job-page-training")
                assert console_errors(browser) == []
        finally:
            api.post(f"/api/v1/jobs/{job['id']}/cancel")


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_sweep_jobs_and_compare_pages(stack):
    from selenium.webdriver.common.by import By

    with stack.client() as api:
        sweep = api.post("/api/v1/sweeps", json={"name": "page-sweep", "base": moons(epochs=2), "strategy": "grid",
                                                 "space": {"optimizer.lr": [0.003, 0.03, 0.3], "batch_size": [10, 20]},
                                                 "seeds": 2, "max_parallel": 12}).json()
        done = wait_sweep(api, sweep["id"])
    ids = [job_id for row in done["leaderboard"] for job_id in row["jobs"]]
    with chromium() as browser:
        _ready(browser, f"{stack.url}/sweeps/{sweep['id']}")
        rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
        assert len(rows) == 6  # every point
        linked = {int(a.text) for a in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody a")}
        assert linked == set(ids)
        assert browser.find_elements(By.CSS_SELECTOR, '#objective figure[data-chart="optimizer.lr"] circle')
        assert len(browser.find_elements(By.CSS_SELECTOR, "#parallel polyline")) == 12
        assert browser.find_elements(By.CSS_SELECTOR, "#importance .importance")
        screenshot(browser, "sweep-page")
        assert console_errors(browser) == []

        _ready(browser, f"{stack.url}/?sweep_id={sweep['id']}")
        listed = {int(r.get_attribute("data-job")) for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")}
        assert listed == set(ids)
        screenshot(browser, "jobs-page")
        assert console_errors(browser) == []

        a, b = ids[0], ids[-1]
        _ready(browser, f"{stack.url}/compare?jobs={a},{b}")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#overlay polyline")) == 2
        fields = [r.find_element(By.CSS_SELECTOR, "td").text for r in browser.find_elements(By.CSS_SELECTOR, "#differences tbody tr")]
        assert "lr" in fields or "batch_size" in fields
        assert re.match(rf"jobs {a} and {b} (part at step \d+|agree)", browser.find_element(By.CSS_SELECTOR, "#parting li").text)
        screenshot(browser, "compare-page")
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_missing_job_is_said_plainly(stack):
    from selenium.webdriver.common.by import By

    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/999999")
        assert browser.find_element(By.ID, "status").text == "404: no job 999999"


@pytest.fixture(scope="module")
def auth_stack(redis_server, tmp_path_factory):
    from tests.support.databases import running_stack

    yield from running_stack("sqlite", redis_server.url, tmp_path_factory, env_overrides={"AUTH": "on"})


def _token(stack, name: str) -> str:
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "services.api", "tokens", "create", name],
                          env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_with_auth_the_pages_ask_for_a_token_once_and_show_only_its_owners_jobs(auth_stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    alice, bob = _token(auth_stack, "alice"), _token(auth_stack, "bob")
    with auth_stack.client() as api:
        mine = api.post("/api/v1/jobs", json={**SEED, "name": "alice's"}, headers={"Authorization": f"Bearer {alice}"}).json()
        theirs = api.post("/api/v1/jobs", json={**SEED, "name": "bob's"}, headers={"Authorization": f"Bearer {bob}"}).json()
    with chromium() as browser:
        browser.get(auth_stack.url + "/")
        WebDriverWait(browser, TIMEOUT).until(seen.visibility_of_element_located((By.ID, "token"))).send_keys(alice)
        browser.find_element(By.ID, "sign-in").click()
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.execute_script("return window.pageReady === true"))
        listed = [int(r.get_attribute("data-job")) for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")]
        assert listed == [mine["id"]]
        _ready(browser, f"{auth_stack.url}/jobs/{mine['id']}")  # no second question: the token is kept
        assert not browser.find_element(By.ID, "login").get_attribute("open")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#network-svg circle.unit")) == 5
        _ready(browser, f"{auth_stack.url}/jobs/{theirs['id']}")
        assert browser.find_element(By.ID, "status").text == f"404: no job {theirs['id']}"  # as absent as a missing one
        screenshot(browser, "job-page-another-owner")
        # the only errors: the first request before the token (401), and bob's job (404)
        assert all(re.search(r"status of (401|404)", e) for e in console_errors(browser)), console_errors(browser)


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_datasets_page_lists_a_dataset_with_its_jobs_and_the_job_page_names_it(stack):
    from selenium.webdriver.common.by import By

    rows = ["size,weight,kind"] + [f"{i % 10},{(i * 7) % 13},{'cat' if i % 3 else 'dog'}" for i in range(90)]
    with stack.client() as api:
        dataset = api.post("/api/v1/datasets", files={"file": ("pets.csv", ("\n".join(rows) + "\n").encode(), "text/csv")}).json()
        job = api.post("/api/v1/jobs", json={"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]},
                                             "loss": "bce", "data": {"dataset": dataset["id"], "target": "kind"}, "epochs": 2}).json()
        wait_status(api, job["id"], {"succeeded"})
    with chromium() as browser:
        _ready(browser, f"{stack.url}/datasets")
        row = browser.find_element(By.ID, f"dataset-{dataset['id']}")
        assert "pets.csv" in row.text and "90" in row.text and "kind (string)" in row.text and f"job {job['id']}" in row.text
        screenshot(browser, "datasets-page")
        assert console_errors(browser) == []
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        link = browser.find_element(By.ID, "dataset")
        assert link.text == f"dataset {dataset['id']}: 90 rows, target kind" and link.get_attribute("href").endswith(f"#dataset-{dataset['id']}")
        assert "classes" in browser.find_element(By.ID, "summary").text
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_readmes_sweep_draws_every_job_on_every_chart_and_two_picked_jobs_open_their_comparison(stack):
    import yaml
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.specs import ROOT

    request = yaml.safe_load((ROOT / "examples/sweep.yaml").read_text())  # batch_size over 1 and "full": a mixed, categorical axis
    with stack.client() as api:
        sweep = api.post("/api/v1/sweeps", json=request).json()
        done = wait_sweep(api, sweep["id"], timeout=240)
    ended = sum(done["progress"]["by_state"].get(s, 0) for s in ("succeeded", "diverged", "failed", "cancelled"))
    assert ended == 30
    with chromium() as browser:
        _ready(browser, f"{stack.url}/sweeps/{sweep['id']}")
        figures = browser.find_elements(By.CSS_SELECTOR, "#objective figure:not([hidden])")
        assert [f.get_attribute("data-chart") for f in figures] == ["optimizer.lr", "batch_size"]
        for figure in figures:  # every ended job is a mark on every chart, "full" ones included
            assert len(figure.find_elements(By.CSS_SELECTOR, ".mark")) == ended, figure.get_attribute("data-chart")
        ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, '#objective figure[data-chart="batch_size"] text.tick')]
        assert ticks == ["1", "full"]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#parallel polyline.job")) == ended
        assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#parallel text.category")] == ["1", "full"]
        screenshot(browser, "sweep-page-readme")
        # a click on a column's title sorts the leaderboard by it
        browser.find_element(By.CSS_SELECTOR, '#leaderboard th[data-column="optimizer.lr"]').click()
        lrs = [float(r.find_elements(By.TAG_NAME, "td")[1].text) for r in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]
        assert lrs == sorted(lrs)
        boxes = browser.find_elements(By.CSS_SELECTOR, "#leaderboard input.choose")
        assert len(boxes) == ended
        picked = [int(b.get_attribute("data-job")) for b in boxes[:2]]
        for box in boxes[:2]:
            box.click()
        browser.find_element(By.ID, "compare").click()
        WebDriverWait(browser, TIMEOUT).until(lambda b: "/compare?" in b.current_url and b.execute_script("return window.pageReady === true"))
        assert browser.current_url.endswith(f"/compare?jobs={picked[0]},{picked[1]}")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#overlay polyline")) == 2
        assert console_errors(browser) == []

        _ready(browser, f"{stack.url}/?sweep_id={sweep['id']}")
        titles = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#jobs thead th")]
        assert "optimizer.lr" in titles and "batch_size" in titles  # the swept parameters as columns
        names = [r.find_elements(By.TAG_NAME, "td")[2].text for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")]
        assert all(re.fullmatch(r"lr-x-batch lr=\S+ batch_size=(1|full) seed [0-2]", n) for n in names), names[:3]
        column = titles.index("val loss")
        browser.find_element(By.CSS_SELECTOR, '#jobs th[data-column="val loss"]').click()
        browser.find_element(By.CSS_SELECTOR, '#jobs th[data-column="val loss"]').click()  # twice: largest first
        losses = [r.find_elements(By.TAG_NAME, "td")[column].text for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")]
        numbers = [float(v) for v in losses if v != "–"]
        assert numbers == sorted(numbers, reverse=True) and len(numbers) == ended
        rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
        picked = [int(r.get_attribute("data-job")) for r in rows[:2]]
        for row in rows[:2]:
            row.find_element(By.CSS_SELECTOR, "input.choose").click()
        screenshot(browser, "jobs-page-sweep")
        browser.find_element(By.ID, "compare").click()
        WebDriverWait(browser, TIMEOUT).until(lambda b: "/compare?" in b.current_url and b.execute_script("return window.pageReady === true"))
        assert browser.current_url.endswith(f"/compare?jobs={picked[0]},{picked[1]}")
        browser.find_element(By.ID, "log-loss").click()  # the log scale: the chart is drawn again on a log axis
        title = "return document.querySelector('#overlay svg').textContent"
        WebDriverWait(browser, TIMEOUT).until(lambda b: "(log scale)" in b.execute_script(title))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#overlay text.y-tick")) >= 3
        screenshot(browser, "compare-page-log")
        assert console_errors(browser) == []

        _ready(browser, f"{stack.url}/sweeps")  # the sweeps index, linked in the bar like jobs
        assert browser.find_element(By.CSS_SELECTOR, 'header nav a[href="/sweeps"]').text == "sweeps"
        row = browser.find_element(By.CSS_SELECTOR, f'#sweeps tr[data-sweep="{sweep["id"]}"]')
        assert "lr-x-batch" in row.text and f"{ended}/30" in row.text
        screenshot(browser, "sweeps-page")
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_wide_network_is_drawn_as_bands_with_histograms_and_shaded_edges(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    layers = [{"units": 64, "activation": "relu"}, {"units": 64, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
    with stack.client() as api:
        job = api.post("/api/v1/jobs", json=moons(model={"layers": layers}, record={"trace": [0]})).json()
        wait_status(api, job["id"], {"succeeded"})
    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        bands = browser.find_elements(By.CSS_SELECTOR, "#network-svg g.band-layer")
        assert [b.get_attribute("data-layer") for b in bands] == ["1", "2"]
        for band in bands:  # a histogram of the layer's a over the batch at step 0
            assert len(band.find_elements(By.CSS_SELECTOR, ".band-hist rect.bar")) == 16
        edges = browser.find_elements(By.CSS_SELECTOR, "#network-svg polygon.band-edge")
        titles = [e.find_element(By.TAG_NAME, "title").get_attribute("textContent") for e in edges]
        assert [t.split(":")[0] for t in titles] == ["W1", "W2", "W3"] and titles[1].startswith("W2: 64×64, mean ")
        assert float(browser.find_element(By.ID, "network-svg").get_attribute("height")) <= 900  # on one screen
        bars = '#network-svg g.band-layer[data-layer="1"] rect.bar'
        before = _attributes(browser, bars, "width")
        Select(browser.find_element(By.ID, "band-values")).select_by_value("delta")
        WebDriverWait(browser, TIMEOUT).until(lambda b: len(_attributes(b, bars, "width")) == 16 and _attributes(b, bars, "width") != before)
        browser.find_element(By.CSS_SELECTOR, '#network-svg g.band-layer[data-layer="2"] rect.band').click()
        listed = browser.find_element(By.ID, "band-units").text.splitlines()
        assert listed[0].startswith("Layer 2 (δ over the batch at step 0)") and len(listed) == 1 + 64
        assert listed[1].startswith("unit 1: z ")
        screenshot(browser, "job-page-wide")
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_smoothing_changes_the_drawn_loss_and_keeps_the_raw_one_behind(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with stack.client() as api:  # batches of one: a noisy loss under each epoch's train and validation loss
        job = api.post("/api/v1/jobs", json=moons(batch_size=1, optimizer={"name": "sgd", "lr": 0.1})).json()
        wait_status(api, job["id"], {"succeeded"})

    def loss_lines(browser) -> dict[str, str]:  # read in one go: a redraw (the smoothing slider) replaces the lines
        lines = browser.execute_script("return [...document.querySelectorAll('#charts figure[data-chart=\"loss\"] polyline')].map("
                                       "(l) => [l.getAttribute('class') + ' ' + l.querySelector('title').textContent, l.getAttribute('points')])")
        return dict(lines)

    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        smoothed = loss_lines(browser)
        assert list(smoothed) == ["raw loss (raw)", "smoothed loss", "epoch train_loss", "epoch val_loss"]  # epoch losses on top
        assert smoothed["smoothed loss"] != smoothed["raw loss (raw)"]
        screenshot(browser, "job-page-smoothed")
        browser.execute_script("const s = document.querySelector('#smoothing'); s.value = '0'; s.dispatchEvent(new Event('input'))")
        WebDriverWait(browser, TIMEOUT).until(lambda b: "series loss" in loss_lines(b))
        plain = loss_lines(browser)
        assert plain["series loss"] == smoothed["raw loss (raw)"]  # unsmoothed, the line is the raw one drawn behind before
        assert browser.find_element(By.ID, "smoothing-value").text == "0"
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_diagnoses_are_listed_marked_on_the_charts_and_the_network_and_counted_per_sweep_point(stack):
    from selenium.webdriver.common.by import By

    from tests.support.specs import dead_relu

    base = dead_relu(1.0)
    with stack.client() as api:  # examples/dead_relu.py's rates as a sweep: the overshooting one kills half of dense_1
        sweep = api.post("/api/v1/sweeps", json={"name": "dead-relu", "base": base, "space": {"optimizer.lr": [0.5, 1.0]}}).json()
        done = wait_sweep(api, sweep["id"])
        steep = next(row["jobs"][0] for row in done["leaderboard"] if row["params"]["optimizer.lr"] == 1.0)
        dead = api.get(f"/api/v1/jobs/{steep}/diagnoses").json()["diagnoses"]
    units = next(d for d in dead if d["kind"] == "dead_units")["evidence"]["units"]
    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{steep}")
        listed = browser.find_elements(By.CSS_SELECTOR, "#diagnoses li")
        assert [li.get_attribute("data-kind") for li in listed] == [d["kind"] for d in dead]
        assert listed[0].text.startswith("dead_units step 40 · dense_1: ") and "of 16 units of dense_1" in listed[0].text
        assert len(browser.find_elements(By.CSS_SELECTOR, '#charts figure[data-chart="loss"] line.diagnosis')) == len(dead)
        marked = {int(c.get_attribute("data-unit")) for c in browser.find_elements(By.CSS_SELECTOR, '#network-svg circle.unit.dead[data-layer="1"]')}
        assert marked == set(units)  # the final weights' drawing marks the units the diagnosis names
        screenshot(browser, "job-page-diagnosed")
        assert console_errors(browser) == []
        _ready(browser, f"{stack.url}/sweeps/{sweep['id']}")
        rows = {r.find_elements(By.TAG_NAME, "td")[1].text: r for r in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")}
        assert [b.text for b in rows["1"].find_elements(By.CSS_SELECTOR, ".badge")] == ["dead_units ×1"]
        assert rows["0.5"].find_elements(By.CSS_SELECTOR, ".badge") == []
        _ready(browser, f"{stack.url}/?sweep_id={sweep['id']}")
        badges = {int(r.get_attribute("data-job")): [b.text for b in r.find_elements(By.CSS_SELECTOR, ".badge")]
                  for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")}
        assert badges[steep] == ["dead_units"] and sum(map(len, badges.values())) == 1
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_curvature_on_the_pages_sharpness_against_2_the_landscape_and_a_sweeps_sharpness_against_2_over_eta(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = moons(optimizer={"name": "sgd", "lr": 0.1}, batch_size="full", epochs=40, record={"curvature": {"every": 4}})
    with stack.client() as api:  # full-batch descent at three rates, the last past the edge: it diverges
        sweep = api.post("/api/v1/sweeps", json={"name": "edge", "base": base, "space": {"optimizer.lr": [0.3, 3.0, 30.0]}}).json()
        done = wait_sweep(api, sweep["id"])
        job_id = next(row["jobs"][0] for row in done["leaderboard"] if row["params"]["optimizer.lr"] == 3.0)
        recorded = api.get(f"/api/v1/jobs/{job_id}/metrics", params={"keys": "sharpness_x_lr"}).json()["sharpness_x_lr"]
        ended = [j for j in api.get(f"/api/v1/sweeps/{sweep['id']}").json()["jobs"] if j["status"] in ("succeeded", "diverged")]
    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{job_id}")
        figure = browser.find_element(By.CSS_SELECTOR, '#charts figure[data-chart="sharpness"]')
        assert figure.find_element(By.CSS_SELECTOR, "line.reference title").get_attribute("textContent") == "2"
        points = figure.find_element(By.CSS_SELECTOR, "polyline.series").get_attribute("points").split()
        assert len(points) == len(recorded["steps"]) == 10  # every 4th of 40 steps, unsmoothed
        # the landscape: asked of a worker, drawn when it answers
        browser.find_element(By.ID, "landscape-draw").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "landscape").get_attribute("data-state") != "computing")
        assert browser.find_element(By.ID, "landscape").get_attribute("data-state") == "drawn", browser.find_element(By.ID, "landscape-hint").text
        drawn = browser.execute_script("const s = document.querySelector('#landscape svg'); return [s.querySelectorAll('polyline.contour')"
                                       ".length, s.querySelectorAll('polyline.path').length, s.querySelectorAll('circle.at-step').length]")
        assert drawn[0] >= 5 and drawn[1:] == [1, 1]
        assert "after 40 steps" in browser.find_element(By.ID, "landscape-hint").text
        browser.execute_script("document.querySelector('#landscape-section').scrollIntoView()")
        screenshot(browser, "job-page-landscape")
        assert console_errors(browser) == []
        _ready(browser, f"{stack.url}/sweeps/{sweep['id']}")
        assert browser.find_element(By.ID, "sharpness-section").get_attribute("hidden") is None  # drawn before the page is ready
        chart = browser.find_element(By.CSS_SELECTOR, "#sharpness svg")
        assert len(chart.find_elements(By.CSS_SELECTOR, "circle.mark")) == len(ended) == 3
        assert chart.find_element(By.CSS_SELECTOR, "polyline.reference title").get_attribute("textContent") == "λ = 2/η"
        assert len(chart.find_elements(By.CSS_SELECTOR, "circle.mark title")) == 3
        browser.execute_script("document.querySelector('#sharpness-section').scrollIntoView()")
        screenshot(browser, "sweep-page-sharpness")
        assert console_errors(browser) == []



@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_job_is_forked_from_the_sliders_step_and_the_fork_names_its_parent(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    spec = moons(record={"every": 4, "gradients": "full"})  # the slider covers steps 0, 4, ..., 36, 39
    with stack.client() as api:
        job = api.post("/api/v1/jobs", json=spec).json()
        wait_status(api, job["id"], {"succeeded"})
    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        slider = browser.find_element(By.ID, "step")
        slider.send_keys(Keys.HOME)
        for _ in range(3):
            slider.send_keys(Keys.ARROW_RIGHT)  # step 12
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.find_element(By.ID, "step-label").text == "step 12")
        changes = browser.find_element(By.ID, "fork-set")
        changes.clear()
        changes.send_keys('{"optimizer.lr": 0.001}')
        browser.find_element(By.ID, "fork").click()
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.current_url.rstrip("/") != f"{stack.url}/jobs/{job['id']}")
        fork_id = int(browser.current_url.rstrip("/").rsplit("/", 1)[1])
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.execute_script("return window.pageReady === true"))
        link = browser.find_element(By.ID, "forked-from")
        assert link.text == f"forked from job {job['id']} at step 12" and link.get_attribute("href").endswith(f"/jobs/{job['id']}")
        assert console_errors(browser) == []
    with stack.client() as api:
        fork = wait_status(api, fork_id, {"succeeded", "failed"})
        assert fork["status"] == "succeeded" and fork["forked_from"] == {"job": job["id"], "step": 12}
        assert api.get(f"/api/v1/jobs/{fork_id}/spec").json()["optimizer"]["lr"] == 0.001
        ours = api.get(f"/api/v1/jobs/{fork_id}/metrics", params={"keys": "loss"}).json()["loss"]
        theirs = api.get(f"/api/v1/jobs/{job['id']}/metrics", params={"keys": "loss"}).json()["loss"]
        assert ours["values"][:4] == theirs["values"][:4] and ours["values"][4:] != theirs["values"][4:]  # parted after step 12
    with chromium() as browser:  # the compare page marks where the fork leaves its parent
        _ready(browser, f"{stack.url}/compare?jobs={job['id']},{fork_id}")
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#overlay line.fork"))
        mark = browser.find_element(By.CSS_SELECTOR, "#overlay line.fork title")
        assert mark.get_attribute("textContent") == f"job {fork_id} forks from job {job['id']} at step 12"
        assert browser.find_element(By.CSS_SELECTOR, "#overlay .fork-label").text == f"job {fork_id} forks from job {job['id']}"
        parting = browser.find_element(By.CSS_SELECTOR, "#parting li.forked").text
        assert parting.startswith(f"jobs {job['id']} and {fork_id} part at step 12") and f"job {job['id']}'s run, bit for bit, up to step 12" \
            in parting
        screenshot(browser, "compare-fork")
        assert console_errors(browser) == []


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_slider_covers_every_step_of_an_ended_job_replaying_those_not_recorded(stack):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with stack.client() as api:
        job = api.post("/api/v1/jobs", json=moons(record={"every": 10, "trace": [20]})).json()  # one step traced
        wait_status(api, job["id"], {"succeeded"})
    with chromium() as browser:
        _ready(browser, f"{stack.url}/jobs/{job['id']}")
        assert browser.find_element(By.ID, "step").get_attribute("max") == "0"  # the one traced step
        browser.find_element(By.ID, "every-step").click()
        WebDriverWait(browser, TIMEOUT).until(lambda b: b.find_element(By.ID, "step").get_attribute("max") == "39")
        slider = browser.find_element(By.ID, "step")
        slider.send_keys(Keys.END)
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "step-label").text == "step 39 (replayed)")
        assert browser.find_element(By.ID, "trace").text.startswith("Step 39")
        slider.send_keys(Keys.HOME)
        for _ in range(20):
            slider.send_keys(Keys.ARROW_RIGHT)
        WebDriverWait(browser, 60).until(lambda b: b.execute_script(
            "return document.querySelector('#trace').textContent.startsWith('Step 20')"))  # the steps passed on the way: not drawn
        assert browser.find_element(By.ID, "step-label").text == "step 20"  # recorded: not replayed
        screenshot(browser, "job-page-replayed-step")
        assert console_errors(browser) == []
