"""Shared bits of the examples: the client, and the post's network on its five samples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from bplab import Client

POST_NETWORK = {
    "layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
    "weights": [[[0.5, -0.2], [0.3, 0.8]], [[0.6, -0.4]]],
    "biases": [[0.1, -0.1], [0.0]],
}


def client_from_args(description: str) -> Client:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", help="service URL (default: $BPLAB_URL or http://127.0.0.1:8000)")
    return Client(parser.parse_args().url)
