"""A trained model leaves the lab as it was trained: ONNX Runtime, and PyTorch loading the safetensors
file into the Sequential the docs spell out, give the engine's own /predict outputs (within 1e-6 of
their magnitude in float32, 1e-12 in float64), for every activation and every loss, on the training
rows and on rows far outside them."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn  # noqa: F401  (the Sequential's source names nn)

from engine import export
from engine.inference import predict
from engine.problem import load_data
from engine.spec import parse_spec
from engine.training import run

HIDDEN = [("linear", None), ("relu", None), ("leaky_relu", 0.2), ("elu", 0.7), ("sigmoid", None), ("tanh", None)]
HEADS = {"bce": ("sigmoid", 1, "moons"), "cross_entropy": ("softmax", 3, "iris"), "mse": ("linear", 1, "moons")}
TOLERANCE = {"float64": 1e-12, "float32": 1e-6}


def trained(activation: str, alpha: float | None, loss: str, dtype: str, standardize: bool = True) -> tuple[dict, dict]:
    head, units, data = HEADS[loss]
    hidden = {"units": 6, "activation": activation, **({"alpha": alpha} if alpha is not None else {})}
    spec = {"model": {"layers": [hidden, {"units": 5, "activation": "tanh"}, {"units": units, "activation": head}], "dropout": 0.2},
            "loss": loss, "data": {"builtin": data, "standardize": standardize, "validation_split": 0.2},
            "optimizer": {"name": "adam", "lr": 0.05}, "epochs": 4, "batch_size": 16, "seed": 3, "dtype": dtype}
    return spec, run(spec)["model"]


def rows(spec: dict) -> np.ndarray:
    """The training rows and as many again far outside them (three times their spread, shifted)."""
    X = load_data(parse_spec(spec)).X
    outside = np.random.default_rng(0).normal(size=X.shape) * 3 * X.std(axis=0) + X.mean(axis=0) + 2
    return np.vstack([X, outside])


def close(got: np.ndarray, want: np.ndarray) -> float:
    """The largest difference relative to the outputs' magnitude (each output column's largest |value|).
    Not elementwise: an output near zero comes from cancellation, where float32 arithmetic itself
    (the engine's against float64) is off by far more than 1e-6 of that tiny value."""
    return float(np.max(np.abs(got - want).max(axis=0) / np.abs(want).max(axis=0)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", list(HEADS))
@pytest.mark.parametrize(("activation", "alpha"), HIDDEN)
def test_onnx_runtime_gives_the_engines_outputs(activation, alpha, loss, dtype):
    spec, model = trained(activation, alpha, loss, dtype)
    X = rows(spec).astype(dtype)  # the rows as ONNX Runtime reads them: in the job's dtype
    want = np.array(predict(spec, model, X)["outputs"])
    session = onnxruntime.InferenceSession(export.onnx_bytes(spec, model, {"bplab.job_id": "7"}), providers=["CPUExecutionProvider"])
    [output] = session.get_outputs()
    assert output.name == ("outputs" if loss == "mse" else "probabilities")
    got = session.run(None, {"x": X})[0]
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    assert close(got, want) <= TOLERANCE[dtype]


def test_the_graph_is_the_network_as_trained():
    spec, model = trained("leaky_relu", 0.2, "cross_entropy", "float32")
    proto = onnx.load_from_string(export.onnx_bytes(spec, model, {"bplab.job_id": "7", "bplab.spec_digest": export.spec_digest(spec)}))
    onnx.checker.check_model(proto, full_check=True)
    [x] = proto.graph.input
    batch, features = x.type.tensor_type.shape.dim
    assert x.name == "x" and batch.dim_param == "batch" and features.dim_value == 4
    assert x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = [node.op_type for node in proto.graph.node]
    assert ops == ["Cast", "Sub", "Div", "Cast", "Gemm", "LeakyRelu", "Gemm", "Tanh", "Gemm", "Softmax", "Identity"]  # no dropout at inference
    assert next(a.f for a in proto.graph.node[5].attribute if a.name == "alpha") == pytest.approx(0.2)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {"bplab.job_id": "7", "bplab.spec_digest": export.spec_digest(spec)}
    unstandardized, model = trained("relu", None, "bce", "float64", standardize=False)
    ops = [node.op_type for node in onnx.load_from_string(export.onnx_bytes(unstandardized, model)).graph.node]
    assert ops[0] == "Gemm"


@pytest.mark.parametrize("loss", list(HEADS))
@pytest.mark.parametrize(("activation", "alpha"), HIDDEN)
def test_torch_loads_the_safetensors_into_the_documented_sequential(activation, alpha, loss):
    spec, model = trained(activation, alpha, loss, "float64")
    data = export.safetensors_bytes(spec, model, {"bplab.job_id": "7"})
    path = f"/tmp/bplab-export-{activation}-{loss}.safetensors"
    with open(path, "wb") as out:
        out.write(data)
    header = safe_open(path, "pt").metadata()
    network = eval(header["sequential"])  # the module docs/api.md spells out, as Python source
    network.load_state_dict(load_file(path))  # strict: every tensor named as the state_dict names it
    X = rows(spec)
    x = (torch.tensor(X) - torch.tensor(json.loads(header["input_mean"]), dtype=torch.float64)) / torch.tensor(
        json.loads(header["input_std"]), dtype=torch.float64)
    network.eval()
    with torch.no_grad():
        got = network(x).numpy()
    want = np.array(predict(spec, model, X)["outputs"])
    assert close(got, want) <= 1e-12
    assert header["output"] == export.output_name(parse_spec(spec)) and header["bplab.job_id"] == "7"


def test_npz_reads_without_pickle():
    spec, model = trained("elu", 0.7, "mse", "float32")
    arrays = np.load(io.BytesIO(export.npz_bytes(spec, model)), allow_pickle=False)
    assert arrays["weights_0"].dtype == np.float32 and arrays["weights_0"].tolist() == np.float32(model["weights"][0]).tolist()
    assert json.loads(str(arrays["layers_json"]))[0] == {"units": 6, "activation": "elu", "alpha": 0.7}
    assert arrays["input_mean"].tolist() == model["input_mean"]
