"""A job's trained network: its weights, and its outputs for new rows."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from engine.spec import FiniteFloat

from .common import Body, Out, Query


class TrainedModel(Out):
    job_id: int
    status: str
    layers: list[dict] = Field(description="the spec's layers")
    weights: list[list[list[float]]] = Field(description="final weights per layer (out × in)")
    biases: list[list[float]]
    input_mean: list[float] | None = Field(default=None, description="with `data.standardize`: the training inputs' mean")
    input_std: list[float] | None = None


class ModelQuery(Query):
    format: Literal["json", "onnx", "safetensors", "npz"] = Field(
        default="json", description="`json`: weights as JSON (below); `onnx`: the network as an ONNX model (`application/onnx`); "
                                    "`safetensors`: a PyTorch state_dict (docs/api.md spells out its module); `npz`: NumPy arrays")


class RegisterRequest(Body):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$",
                      description="the registered model (with AUTH=on, yours alone: MLflow names it `<name>@<owner>`)")


class PredictRequest(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"X": [[0.5, 0.1]]}]})

    X: list[list[FiniteFloat]] = Field(min_length=1, max_length=10_000, description="input rows, as many values each as the network's inputs")


class Prediction(Out):
    outputs: list[list[float]]
    classes: list[int] | list[list[int]] | None = Field(
        default=None, description="cross_entropy: the argmax per row; bce: output > 0.5 per row and output")
    labels: list[str] | list[float] | list[list[str]] | list[list[float]] | None = Field(
        default=None, exclude_if=lambda value: value is None,
        description="with an uploaded dataset's class labels: each row's class by its label (`data.classes` of the spec)")
