"""The job page of a long run as a person opens it: a `make up` stack, a job of 100,000 recorded steps
(the post's 2-2-1 network on its one sample: batches of one, every step recorded with gradient
summaries), its page opened in headless Chromium; the time from navigation to the page having drawn
its network, trace, charts and summary (target ≤ 1 s with smoothing on, as the page opens by default),
median of five loads, beside the same page with smoothing off and the same page for a 100-step job.

    .venv/bin/python bench/pages.py [--steps 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.browser import chromium
from tests.support.services import MakeUp

SPEC = {"model": {"layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
        "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.1}, "record": {"every": 1, "trace": [0]}}


def trained(client: httpx.Client, steps: int) -> dict:
    job = client.post("/api/v1/jobs", json={**SPEC, "steps": steps, "name": f"page-bench-{steps}"}).json()
    while (job := client.get(f"/api/v1/jobs/{job['id']}").json())["status"] in ("queued", "running"):
        time.sleep(0.5)
    return job


def load_ms(browser, url: str, smoothing: str | None = None) -> float:
    """Navigation to drawn, in ms; `smoothing` set first as the page keeps it (in the browser's storage)."""
    if smoothing is not None:
        browser.get(url)
        browser.execute_script("localStorage.setItem('bplab-smoothing', arguments[0])", smoothing)
    browser.get(url)
    deadline = time.monotonic() + 60
    while not browser.execute_script("return window.pageReady === true"):
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.01)
    return browser.execute_script("return window.pageReadyAt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bplab-bench-pages-"))
    up = MakeUp(var, MAX_STEPS="10000000").start()
    try:
        with httpx.Client(base_url=up.url, timeout=120) as client:
            t0 = time.monotonic()
            long, short = trained(client, args.steps), trained(client, 100)
            points = len(client.get(f"/api/v1/jobs/{long['id']}/metrics/keys").json()["keys"]) * long["progress"]["step"]
            print(f"a job of {args.steps:,} recorded steps (about {points:,} points) trained in {time.monotonic() - t0:.0f} s", flush=True)
        with chromium() as browser:
            figures = {}
            for job in (short, long):
                url = f"{up.url}/jobs/{job['id']}"
                load_ms(browser, url)  # warm: the script and the server's first requests
                for smoothing in ("0.9", "0"):
                    figures[job["id"], smoothing] = statistics.median(load_ms(browser, url, smoothing) for _ in range(5))
        print(f"job page, navigation to drawn (network, trace, charts, summary), {args.steps:,} steps: "
              f"{figures[long['id'], '0.9']:.0f} ms with smoothing 0.9 (target ≤ 1,000 ms), {figures[long['id'], '0']:.0f} ms without; "
              f"100 steps: {figures[short['id'], '0.9']:.0f} ms with smoothing, {figures[short['id'], '0']:.0f} ms without")
    finally:
        up.stop()


if __name__ == "__main__":
    main()
