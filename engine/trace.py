"""The post's "Full Backward Pass Trace" table, generated from a recorded step's trace.

`trace_rows(trace)` lists (step, symbol, formula, values, result) rows: the output error signal,
each layer's weight and bias gradients, the error signal passed back through each hidden layer,
then every parameter's update. With a batch of several samples the gradients are batch means,
so the per-sample "values" column is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import make_activation

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_DERIVATIVE = {"relu": "ReLU′", "leaky_relu": "LeakyReLU′", "elu": "ELU′", "sigmoid": "σ′", "tanh": "tanh′",
               "linear": "1", "softmax": "softmax′"}


def _sub(*indices: int) -> str:
    """Subscript indices: W2₁₂ for row 1, column 2; with a comma once any has two digits (W2₁,₁₁ and W2₁₁,₁ differ)."""
    return ("," if len(indices) > 1 and max(indices) > 9 else "").join(str(i).translate(_SUB) for i in indices)


def _num(x: float, digits: int = 4) -> str:
    text = f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return text.replace("-", "−") if text not in ("-0",) else "0"


def _derivative(layer: dict[str, Any], z: float, a: float) -> float:
    """f'(z) of a hidden unit, by the engine's own activation."""
    return float(make_activation(layer["activation"], layer.get("alpha")).derivative(np.array([z]), np.array([a]))[0])


def trace_rows(trace: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows of the backward-pass trace table, in the order backpropagation computes them."""
    layers = trace["layers"]
    single = len(trace["X"]) == 1
    rows: list[tuple[str, str, str, str, str]] = []
    L = len(layers)
    out = layers[-1]
    for j, d in enumerate(out["delta"][0] if single else [None] * len(out["db"])):
        sym = f"δ{_sub(L)}" + (_sub(j + 1) if len(out["db"]) > 1 else "")
        if trace["fused"] and single:
            yhat, y = out["A"][0][j], trace["y"][0][j]
            rows.append(("Output error signal", sym, "ŷ − y", f"{_num(yhat)} − {_num(y)}", _num(d)))
        elif single:
            rows.append(("Output error signal", sym, "∂L/∂z", "", _num(d)))
    for n in range(L, 0, -1):
        layer = layers[n - 1]
        inputs = trace["X"][0] if n == 1 else layers[n - 2]["A"][0]
        in_name = "x" if n == 1 else f"a{n - 1}"
        n_out, n_in = len(layer["dW"]), len(layer["dW"][0])
        for j in range(n_out):
            delta_sym = f"δ{n}{_sub(j + 1)}" if n_out > 1 else f"δ{_sub(n)}"
            for k in range(n_in):
                sym = f"∂L/∂W{n}" + (_sub(j + 1, k + 1) if n_out > 1 else _sub(k + 1))
                if single:
                    rows.append((f"Layer {n} weight grad", sym, f"{delta_sym} × {in_name}{_sub(k + 1)}",
                                 f"{_num(layer['delta'][0][j])} × {_num(inputs[k])}", _num(layer["dW"][j][k])))
                else:
                    rows.append((f"Layer {n} weight grad", sym, f"mean over batch of {delta_sym} × {in_name}{_sub(k + 1)}", "",
                                 _num(layer["dW"][j][k])))
            rows.append((f"Layer {n} bias grad", f"∂L/∂b{n}" + (_sub(j + 1) if n_out > 1 else ""), f"{delta_sym} × 1",
                         f"{_num(layer['delta'][0][j])} × 1" if single else "", _num(layer["db"][j])))
        if n > 1:
            prev = layers[n - 2]
            deriv = _DERIVATIVE.get(prev["activation"], "f′")
            for k in range(len(prev["db"])):
                sym = f"δ{n - 1}{_sub(k + 1)}"
                if single and n_out == 1:
                    w, d, z, a = layer["W"][0][k], layer["delta"][0][0], prev["Z"][0][k], prev["A"][0][k]
                    rows.append((f"Hidden error signal {k + 1}", sym, f"W{n}{_sub(k + 1)} × δ{_sub(n)} × {deriv}(Z{n - 1}{_sub(k + 1)})",
                                 f"{_num(w)} × {_num(d)} × {_num(_derivative(prev, z, a))}", _num(prev["delta"][0][k])))
                elif single:
                    rows.append((f"Hidden error signal {k + 1}", sym, f"Σⱼ W{n}ⱼ{_sub(k + 1)} δ{n}ⱼ × {deriv}(Z{n - 1}{_sub(k + 1)})",
                                 "", _num(prev["delta"][0][k])))
    lr = trace["lr"]
    for n in range(L, 0, -1):
        layer = layers[n - 1]
        n_out = len(layer["W"])
        for j in range(n_out):
            for k in range(len(layer["W"][j])):
                sym = f"W{n}" + (_sub(j + 1, k + 1) if n_out > 1 else _sub(k + 1))
                rows.append(("Update", sym, _update_formula(trace, lr, layer["dW"][j][k]),
                             f"{_num(layer['W'][j][k])} → ", _num(layer["W_new"][j][k])))
            sym = f"b{n}" + (_sub(j + 1) if n_out > 1 else "")
            rows.append(("Update", sym, _update_formula(trace, lr, layer["db"][j]), f"{_num(layer['b'][j])} → ", _num(layer["b_new"][j])))
    return rows


def _update_formula(trace: dict[str, Any], lr: float, grad: float) -> str:
    if trace["optimizer"] == "sgd":
        return f"− {_num(lr)} × {_num(grad)}"
    return f"{trace['optimizer']} step (grad {_num(grad)})"


def format_trace_table(trace: dict[str, Any]) -> str:
    """The trace as a plain-text table with aligned columns."""
    header = ("Step", "Symbol", "Formula", "Values", "Result")
    rows = [header] + trace_rows(trace)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"Step {trace['step']} (epoch {trace['epoch']}): loss {trace['loss']:.5f}, lr {trace['lr']:g}"]
    for n, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
