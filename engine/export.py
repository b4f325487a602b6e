"""A trained model in the formats other tools read: ONNX, safetensors (a PyTorch state_dict) and NPZ.

Each is built from a job's spec and its stored `model` (weights `(out, in)` per layer, biases, and the
input standardisation when the job used it), so what leaves the lab is exactly what `/predict` runs:

- ONNX: one input `x` (a dynamic batch, the feature count), the standardisation (`Sub`, `Div`, in
  float64 as the engine does it, with a `Cast` either side for a float32 job), each
  dense layer as `Gemm` with `transB=1` (W is stored `(out, in)`, as PyTorch's Linear keeps it), each
  activation of the spec, dropout left out (inference), and one output named for what it is:
  `probabilities` for bce and cross_entropy, `outputs` for mse. The job's dtype throughout.
- safetensors: the tensors of the `torch.nn.Sequential` that `sequential_source` spells out (a Linear
  and an activation module per layer, `nn.Identity()` for a linear one, so layer i's Linear is module
  2i), named as its state_dict names them; the standardisation and the spec's digest in the header.
- NPZ: `weights_i`, `biases_i`, `input_mean`/`input_std` and `layers_json`, loadable with
  `np.load(path, allow_pickle=False)`.

No format needs pickle, to write or to read.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np

from .spec import JobSpec, parse_spec

FORMATS = ("json", "onnx", "safetensors", "npz")
MEDIA_TYPES = {"onnx": "application/onnx", "safetensors": "application/octet-stream", "npz": "application/octet-stream"}
OPSET = 17  # read by every ONNX Runtime of the last three years and by MLflow's onnx flavor
IR_VERSION = 8  # the IR of opset 17

_TORCH_MODULES = {"linear": "nn.Identity()", "relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()",
                  "softmax": "nn.Softmax(dim=-1)"}


def spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of the spec's canonical JSON (sorted keys, no spaces): the same spec, the same digest."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def provenance(job_id: int, spec: dict[str, Any]) -> dict[str, str]:
    """What an exported file says of where it came from (ONNX metadata_props, the safetensors header):
    the job, the spec's digest, and the class labels in output order when a dataset named them."""
    found = {"bplab.job_id": str(job_id), "bplab.spec_digest": spec_digest(spec)}
    classes = (spec.get("data") or {}).get("classes")
    if classes is not None:
        found["bplab.classes"] = json.dumps(classes)
    return found


def finite(model: dict[str, Any]) -> bool:
    """Every weight and bias is a finite number (a model worth exporting or predicting with)."""
    return all(np.isfinite(np.asarray(part, dtype=np.float64)).all() for key in ("weights", "biases") for part in model[key])


def output_name(spec: JobSpec) -> str:
    """What the network's output is: class probabilities, or the regression's outputs."""
    return "outputs" if spec.loss == "mse" else "probabilities"


def _arrays(spec: JobSpec, model: dict[str, Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    dtype = np.dtype(spec.dtype)
    return ([np.asarray(w, dtype=dtype) for w in model["weights"]], [np.asarray(b, dtype=dtype) for b in model["biases"]])


def _standardisation(model: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    if model.get("input_mean") is None:
        return None
    return np.asarray(model["input_mean"], dtype=np.float64), np.asarray(model["input_std"], dtype=np.float64)


def output_columns(spec: JobSpec, n_outputs: int) -> list[str]:
    """The outputs as table columns (`probabilities_0`, ...), for an MLflow model with several outputs."""
    return [output_name(spec)] if n_outputs == 1 else [f"{output_name(spec)}_{j}" for j in range(n_outputs)]


def onnx_model(spec: JobSpec | dict[str, Any], model: dict[str, Any], metadata: dict[str, str] | None = None,
               columns: bool = False) -> Any:
    """The network as an `onnx.ModelProto`, checked by `onnx.checker`; `metadata` goes to its metadata_props.
    With `columns`, several outputs leave as one `(batch, 1)` output each (`output_columns`): MLflow's
    pyfunc answers a DataFrame with a column per graph output, and flattens a wider one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
    weights, biases = _arrays(spec, model)
    element = TensorProto.DOUBLE if spec.dtype == "float64" else TensorProto.FLOAT
    nodes, initializers = [], []
    current = "x"

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    if (scaling := _standardisation(model)) is not None:  # in float64, as the engine standardises
        if element == TensorProto.FLOAT:
            current = node("Cast", [current], "x_float64", to=TensorProto.DOUBLE)
        centred = node("Sub", [current, constant("input_mean", scaling[0])], "centred")
        current = node("Div", [centred, constant("input_std", scaling[1])], "standardised")
        if element == TensorProto.FLOAT:
            current = node("Cast", [current], "standardised_float32", to=TensorProto.FLOAT)
    last = len(weights) - 1
    for i, (layer, W, b) in enumerate(zip(spec.model.layers, weights, biases, strict=True)):
        z = node("Gemm", [current, constant(f"W{i}", W), constant(f"b{i}", b)], f"z{i}", transB=1)
        current = _activation(node, constant, layer.activation, layer.alpha, z, f"a{i}", np.dtype(spec.dtype))
        if i == last:
            current = node("Identity", [current], output_name(spec))
    n_out = weights[-1].shape[0]
    outputs = [helper.make_tensor_value_info(output_name(spec), element, ["batch", n_out])]
    if columns and n_out > 1:
        names = output_columns(spec, n_out)
        nodes.append(helper.make_node("Split", [current, constant("split", np.ones(n_out, np.int64))], names, name="columns", axis=1))
        outputs = [helper.make_tensor_value_info(name, element, ["batch", 1]) for name in names]
    graph = helper.make_graph(nodes, f"bplab_{'_'.join(str(len(b)) for b in biases)}",
                              [helper.make_tensor_value_info("x", element, ["batch", weights[0].shape[1]])], outputs, initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="backprop-lab",
                              doc_string="a network trained by Backprop Lab; its outputs equal the job's /predict outputs")
    proto.ir_version = IR_VERSION
    helper.set_model_props(proto, metadata or {})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _activation(node: Any, constant: Any, name: str, alpha: float | None, z: str, out: str, dtype: np.dtype) -> str:
    """The activation's ONNX op. In float64, leaky ReLU is PRelu with its slope as a float64 tensor
    (LeakyRelu's alpha is a float32 attribute: 0.2 would become 0.20000000298), and ELU is spelled out
    in primitive ops (ONNX Runtime has no double kernel for Elu; an exported model must run where it is opened)."""
    if name == "linear":
        return z
    if name == "relu":
        return node("Relu", [z], out)
    if name == "leaky_relu":
        alpha = 0.01 if alpha is None else alpha
        if dtype == np.float32:
            return node("LeakyRelu", [z], out, alpha=alpha)
        return node("PRelu", [z, constant(f"{out}_alpha", np.array([alpha], dtype))], out)  # an attribute is float32 only
    if name == "elu":
        alpha = 1.0 if alpha is None else alpha
        if dtype == np.float32:
            return node("Elu", [z], out, alpha=alpha)
        zero = constant(f"{out}_zero", np.zeros((), dtype))
        negative = node("Min", [z, zero], f"{out}_negative")
        expm1 = node("Sub", [node("Exp", [negative], f"{out}_exp"), constant(f"{out}_one", np.ones((), dtype))], f"{out}_expm1")
        scaled = node("Mul", [expm1, constant(f"{out}_alpha", np.array(alpha, dtype))], f"{out}_scaled")
        return node("Where", [node("Greater", [z, zero], f"{out}_positive"), z, scaled], out)
    if name == "sigmoid":
        return node("Sigmoid", [z], out)
    if name == "tanh":
        return node("Tanh", [z], out)
    if name == "softmax":
        return node("Softmax", [z], out, axis=-1)
    raise ValueError(f"no ONNX form for activation {name!r}")


def onnx_bytes(spec: JobSpec | dict[str, Any], model: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """The serialized ONNX model (what `format=onnx` answers)."""
    return onnx_model(spec, model, metadata).SerializeToString()


def sequential_source(spec: JobSpec | dict[str, Any], n_inputs: int) -> str:
    """The `torch.nn.Sequential` whose state_dict the safetensors file holds, as Python source."""
    spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
    modules, width = [], n_inputs
    for layer in spec.model.layers:
        modules.append(f"nn.Linear({width}, {layer.units})")
        if layer.activation == "leaky_relu":
            modules.append(f"nn.LeakyReLU({0.01 if layer.alpha is None else layer.alpha!r})")
        elif layer.activation == "elu":
            modules.append(f"nn.ELU({1.0 if layer.alpha is None else layer.alpha!r})")
        else:
            modules.append(_TORCH_MODULES[layer.activation])
        width = layer.units
    return f"nn.Sequential({', '.join(modules)})" + (".double()" if spec.dtype == "float64" else "")


def state_dict(spec: JobSpec | dict[str, Any], model: dict[str, Any]) -> dict[str, np.ndarray]:
    """`{"0.weight": W0, "0.bias": b0, "2.weight": ...}`: the Sequential's parameters by its own names."""
    spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
    weights, biases = _arrays(spec, model)
    tensors = {}
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        tensors[f"{2 * i}.weight"], tensors[f"{2 * i}.bias"] = np.ascontiguousarray(W), np.ascontiguousarray(b)
    return tensors


def safetensors_bytes(spec: JobSpec | dict[str, Any], model: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """The state_dict as safetensors; the header's metadata holds `sequential` (the module to load it
    into), `input_mean`/`input_std` (JSON, when the job standardised) and whatever `metadata` adds."""
    from safetensors.numpy import save

    spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
    header = {"sequential": sequential_source(spec, len(model["weights"][0][0])), "output": output_name(spec), **(metadata or {})}
    if model.get("input_mean") is not None:
        header["input_mean"], header["input_std"] = json.dumps(model["input_mean"]), json.dumps(model["input_std"])
    return save(state_dict(spec, model), metadata=header)


def npz_bytes(spec: JobSpec | dict[str, Any], model: dict[str, Any]) -> bytes:
    """`weights_i`, `biases_i` (the job's dtype), `input_mean`/`input_std` when standardised, and the
    layers as JSON in `layers_json` (a unicode array, so `allow_pickle=False` reads it)."""
    spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)
    weights, biases = _arrays(spec, model)
    arrays = {f"weights_{i}": W for i, W in enumerate(weights)} | {f"biases_{i}": b for i, b in enumerate(biases)}
    if model.get("input_mean") is not None:
        arrays["input_mean"], arrays["input_std"] = np.asarray(model["input_mean"]), np.asarray(model["input_std"])
    arrays["layers_json"] = np.array(json.dumps([layer.model_dump(exclude_none=True) for layer in spec.model.layers]))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
