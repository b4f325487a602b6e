"""The job spec: the one JSON contract shared by the engine, the API, the worker and the client.

Pydantic models check the shape of the document; `parse_spec` turns every problem into a
`SpecError` whose messages name the offending field by its path (`model.layers[1].activation`).
Checks that need the data (shapes of explicit weights, label ranges, batch size against the data
size) live in `engine.problem`, which raises the same error type.
"""

from __future__ import annotations

import json
import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
SEED_MAX = 2**63 - 1  # seeds feed numpy's SeedSequence; a signed 64-bit integer keeps them portable

# Options each optimizer accepts besides name, lr, weight_decay and clip_norm (PyTorch's names).
OPTIMIZER_OPTIONS = {
    "sgd": {"momentum", "dampening", "nesterov"},
    "rmsprop": {"alpha", "eps", "momentum", "centered"},
    "adam": {"betas", "eps", "amsgrad"},
    "adamw": {"betas", "eps", "amsgrad"},
}
# PyTorch's defaults, so a run can move between the two.
OPTIMIZER_DEFAULTS = {
    "sgd": {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0, "dampening": 0.0, "nesterov": False},
    "rmsprop": {"lr": 1e-2, "weight_decay": 0.0, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
    "adam": {"lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False},
    "adamw": {"lr": 1e-3, "weight_decay": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": False},
}


class SpecError(ValueError):
    """A job spec that cannot be trained; `errors` lists `(field_path, reason)` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" if field else reason for field, reason in errors))

    @property
    def field(self) -> str:
        """The first offending field's path."""
        return self.errors[0][0]


class _Strict(BaseModel):
    """Unknown fields refused, and no coercion: "8" is no number and 1 no boolean."""

    model_config = ConfigDict(extra="forbid", frozen=False, strict=True)


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Layer(_Strict):
    units: int = Field(ge=1, le=100_000, description="units of the layer (the input width comes from the data)")
    activation: Literal["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"] = Field(
        description="the layer's activation; softmax on the output layer only")
    alpha: FiniteFloat | None = Field(default=None, description="negative slope (leaky_relu, default 0.01) or scale (elu, default 1.0)")

    @model_validator(mode="after")
    def _alpha_fits(self) -> Layer:
        if self.alpha is not None and self.activation not in ("leaky_relu", "elu"):
            raise InvalidField("alpha", f"only leaky_relu and elu take alpha, not {self.activation!r}")
        if self.alpha is None and self.activation in ("leaky_relu", "elu"):
            self.alpha = 0.01 if self.activation == "leaky_relu" else 1.0
        return self


class Model(_Strict):
    layers: list[Layer] = Field(min_length=1, max_length=1000, description="the layers, input side first (any depth)")
    init: Literal["he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "zeros"] = Field(
        default="he_normal", description="seeded weight initialisation (PyTorch's kaiming/xavier); biases start at zero")
    weights: list[list[list[FiniteFloat]]] | None = Field(default=None, description="explicit weights, `(out, in)` per layer")
    biases: list[list[FiniteFloat]] | None = Field(default=None, description="explicit biases, one list per layer (with `weights`)")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="inverted dropout on hidden layers, training only")

    @model_validator(mode="after")
    def _softmax_last(self) -> Model:
        for i, layer in enumerate(self.layers[:-1]):
            if layer.activation == "softmax":
                raise InvalidField(f"layers[{i}].activation", "'softmax' is only allowed on the output layer")
        if (self.weights is None) != (self.biases is None):
            raise InvalidField("weights" if self.weights is None else "biases", "weights and biases must be given together")
        for name in ("weights", "biases"):
            given = getattr(self, name)
            if given is not None and len(given) != len(self.layers):
                raise InvalidField(name, f"{len(given)} entries for {len(self.layers)} layers")
        return self


class Schedule(_Strict):
    name: Literal["constant", "step", "cosine"] = Field(default="constant", description="learning-rate schedule, advanced per step")
    step_size: int | None = Field(default=None, ge=1, description="step: multiply lr by gamma every step_size steps")
    gamma: FiniteFloat = Field(default=0.1, gt=0, description="step: the factor")
    t_max: int | None = Field(default=None, ge=1, description="cosine: steps of the half period (default: all steps)")
    eta_min: FiniteFloat = Field(default=0.0, ge=0, description="cosine: the lowest learning rate")

    @model_validator(mode="after")
    def _step_needs_size(self) -> Schedule:
        if self.name == "step" and self.step_size is None:
            raise InvalidField("step_size", "required by the 'step' schedule")
        return self


class Optimizer(_Strict):
    name: Literal["sgd", "rmsprop", "adam", "adamw"] = Field(default="sgd", description="update rule (PyTorch's, with its defaults)")
    lr: FiniteFloat | None = Field(default=None, description="learning rate, > 0 (default: PyTorch's)")
    weight_decay: FiniteFloat | None = Field(default=None, ge=0, description="L2 penalty (decoupled for adamw)")
    momentum: FiniteFloat | None = Field(default=None, ge=0, description="sgd, rmsprop")
    dampening: FiniteFloat | None = Field(default=None, ge=0, le=1, description="sgd")
    nesterov: bool | None = Field(default=None, description="sgd: Nesterov momentum (needs momentum > 0, dampening 0)")
    alpha: FiniteFloat | None = Field(default=None, gt=0, lt=1, description="rmsprop: smoothing constant")
    eps: FiniteFloat | None = Field(default=None, gt=0, description="rmsprop, adam, adamw: added to the denominator")
    centered: bool | None = Field(default=None, description="rmsprop: normalise by the centred second moment")
    betas: list[FiniteFloat] | None = Field(default=None, min_length=2, max_length=2,
                                            description="adam, adamw: the two moment decay rates, each in [0, 1)")
    amsgrad: bool | None = Field(default=None, description="adam, adamw: the AMSGrad variant")
    clip_norm: FiniteFloat | None = Field(default=None, gt=0, description="clip the global gradient L2 norm")
    schedule: Schedule = Field(default_factory=Schedule, description="the learning-rate schedule")

    @model_validator(mode="after")
    def _options_fit(self) -> Optimizer:
        allowed = OPTIMIZER_OPTIONS[self.name]
        for option in ("momentum", "dampening", "nesterov", "alpha", "eps", "centered", "betas", "amsgrad"):
            if getattr(self, option) is not None and option not in allowed:
                raise InvalidField(option, f"not an option of {self.name!r} (it takes {', '.join(sorted(allowed))})")
        for option, default in OPTIMIZER_DEFAULTS[self.name].items():
            if getattr(self, option) is None:
                setattr(self, option, list(default) if isinstance(default, list) else default)
        if self.lr <= 0:
            raise InvalidField("lr", f"must be > 0, got {self.lr}")
        if self.betas is not None and not all(0 <= b < 1 for b in self.betas):
            raise InvalidField("betas", f"each must be in [0, 1), got {list(self.betas)}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise InvalidField("nesterov", "needs momentum > 0 and dampening 0")
        return self


class Data(_Strict):
    X: list[list[FiniteFloat]] | None = Field(default=None, description="inline inputs, one row per sample")
    y: list[FiniteFloat | list[FiniteFloat]] | None = Field(default=None, description="inline targets")
    builtin: Literal["seed", "xor", "moons", "circles", "spiral", "blobs", "iris", "breast_cancer", "digits"] | None = Field(
        default=None, description="a builtin dataset instead of inline X/y (`seed`: the post's five samples)")
    dataset: int | None = Field(default=None, ge=1, le=2**31 - 1,
                                description="an uploaded dataset's id (POST /api/v1/datasets) instead of inline X/y or a builtin")
    target: str | list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, description="with `dataset`: the target column (class labels or, for mse, numbers; several columns for mse)")
    features: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1, description="with `dataset`: the input columns (default: every column but the target)")
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                               description="with `dataset`: its SHA-256, set by the service when the job is stored")
    rows: int | None = Field(default=None, ge=1, description="with `dataset`: its rows, set by the service when the job is stored")
    classes: list[str] | list[float] | None = Field(
        default=None, description="with `dataset` and bce or cross_entropy: the target's classes in sorted order, set by the service")
    n_samples: int | None = Field(default=None, ge=1, le=10_000_000, description="samples of a synthetic builtin dataset")
    noise: FiniteFloat | None = Field(default=None, ge=0, description="noise of a synthetic builtin dataset")
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0, description="a seeded random part held out for val_loss and val_accuracy")
    standardize: bool = Field(default=False, description="standardise inputs with the training part's statistics")

    # Set once the rows were checked: pydantic runs this validator again whenever the instance is reused
    # in another spec (a sweep's points share one parsed dataset), and the rows do not change.
    _checked: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _one_source(self) -> Data:
        if self._checked:
            return self
        inline = self.X is not None or self.y is not None
        sources = [name for name, given in (("X", inline), ("builtin", self.builtin is not None), ("dataset", self.dataset is not None))
                   if given]
        if len(sources) > 1:
            raise InvalidField(sources[1], "give one source of data (inline X/y, a builtin dataset or an uploaded dataset), "
                                           f"not {' and '.join(sources)}")
        if not sources:
            raise InvalidField("X", "give inline X and y, a builtin dataset, or an uploaded dataset")
        if self.dataset is None:
            for name in ("target", "features", "digest", "rows", "classes"):
                if getattr(self, name) is not None:
                    raise InvalidField(name, "only an uploaded dataset (`dataset`) takes it")
        elif self.target is None or self.target == []:
            raise InvalidField("target", "name the target column of the dataset")
        if self.dataset is not None and (self.n_samples is not None or self.noise is not None):
            raise InvalidField("n_samples" if self.n_samples is not None else "noise", "only builtin datasets take it")
        if inline:
            if self.X is None or self.y is None:
                raise InvalidField("X" if self.X is None else "y", "X and y must be given together")
            if len(self.X) == 0:
                raise InvalidField("X", "no samples")
            if len(self.X) != len(self.y):
                raise InvalidField("y", f"{len(self.y)} targets for {len(self.X)} samples in X")
            width = len(self.X[0])
            if width == 0 or set(map(len, self.X)) != {width}:  # at C speed; find the row only when one is off
                i, row = next((i, row) for i, row in enumerate(self.X) if len(row) != width or width == 0)
                raise InvalidField(f"X[{i}]", f"row has {len(row)} values, the first row has {width}")
            if self.n_samples is not None or self.noise is not None:
                raise InvalidField("n_samples" if self.n_samples is not None else "noise", "only builtin datasets take it")
        self._checked = True
        return self


class CurvatureSettings(_Strict):
    """What `record.curvature` measures (engine/curvature.py): exact Hessian-vector products, from them λmax
    by Lanczos, the trace by Hutchinson's estimator (both exact up to 300 parameters)."""

    every: int = Field(ge=1, description="at every N-th step (that is recorded)")
    on: Literal["batch", "train"] = Field(default="batch", description="the step's batch, or the whole training set (at most "
                                          "10,000 samples)")
    tolerance: float = Field(default=1e-4, gt=0, lt=1, description="Lanczos stops when λmax moves less than this, relatively")
    probes: int = Field(default=10, ge=1, le=1000, description="Hutchinson's probes for the trace (networks of over 300 parameters)")


class Record(_Strict):
    every: int = Field(default=1, ge=1, description="record every N optimizer steps (and always the last)")
    gradients: Literal["none", "summary", "full"] = Field(
        default="summary", description="`summary`: per-tensor statistics; `full`: the arrays too; `none`: the loss only")
    trace: bool | list[Annotated[int, Field(ge=0)]] = Field(
        default=False, description="the backward-pass trace: of every recorded step (`true`) or of the listed steps")
    curvature: CurvatureSettings | None = Field(default=None, description="the loss surface's curvature at some recorded "
                                                "steps: `sharpness` (λmax), `sharpness_x_lr` (it crosses 2 where descent diverges), "
                                                "`hessian_trace`, `hessian_eig/<i>`")
    checkpoints: int | None = Field(default=None, ge=0, description="keep the training state every N steps and after the last, so "
                                    "any step is replayed or forked from the nearest (`0`: none kept; left out: chosen from the "
                                    "network's size, docs/engine.md#kept-checkpoints)")
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=0,
                           description="budget for what the job records: metric points, full gradients, traces, kept checkpoints "
                                       "(≤ the server's MAX_RECORD_BYTES)")


class DiagnoseSettings(_Strict):
    """When a diagnosis begins (engine/diagnoses.py; docs/diagnoses.md explains each)."""

    dead_fraction: float = Field(default=0.5, gt=0, le=1, description="dead_units: this fraction of a ReLU-family layer's units dead "
                                 "(z ≤ 0 for every sample) on `steps` recorded steps in a row; layer_dead: all of them")
    saturated_fraction: float = Field(default=0.5, gt=0, le=1, description="saturated_units: this fraction of a hidden sigmoid or tanh "
                                      "layer's units within `saturation_eps` of a bound for every sample, as long")
    saturation_eps: float = Field(default=1e-3, gt=0, lt=0.5, description="how near a bound counts as saturated")
    vanishing_ratio: float = Field(default=1e-3, gt=0, description="vanishing_gradients: the first layer's weight-gradient norm over the "
                                   "last's below this, as long")
    exploding_growth: float = Field(default=100.0, gt=1, description="exploding_gradients: the largest weight-gradient norm this many "
                                    "times its first recorded value, as long")
    steps: int = Field(default=3, ge=1, le=1000, description="recorded steps in a row a step condition must hold (more with small "
                       "batches: enough steps to cover `samples` samples)")
    samples: int = Field(default=50, ge=1, le=100_000, description="samples a step condition must cover before it counts")
    loss_window: int = Field(default=10, ge=2, le=100_000, description="recorded losses per window (more with mini-batches: enough to "
                             "cover `loss_samples` samples); loss_rising and plateau compare the windows' medians")
    loss_samples: int = Field(default=500, ge=1, le=10_000_000, description="samples a loss window covers at least (mini-batches)")
    loss_rise: float = Field(default=0.25, gt=0, description="loss_rising: a window's median above the best window's by this "
                             "fraction of the progress made from the start to that best (or above where training started)")
    plateau_windows: int = Field(default=5, ge=1, le=1000, description="plateau: windows without the best median improving by "
                                 "`plateau_tolerance`")
    plateau_tolerance: float = Field(default=0.01, ge=0, lt=1, description="the relative improvement that ends a plateau")
    overfit_epochs: int = Field(default=5, ge=1, le=10_000, description="overfitting (with `data.validation_split`): epochs since the "
                                "best val_loss, each `overfit_margin` above it, while train_loss fell")
    overfit_margin: float = Field(default=0.05, ge=0, description="how far above its best the validation loss must stay")


class JobSpec(_Strict):
    """A training job: network, loss, data, optimizer and what to record."""

    model: Model = Field(description="the network")
    loss: Literal["bce", "mse", "cross_entropy"] = Field(
        description="mean over the batch (and outputs for mse, bce); sigmoid+bce and softmax+cross_entropy use the fused gradient")
    data: Data = Field(description="inline `X`/`y` or a builtin dataset")
    optimizer: Optimizer = Field(default_factory=Optimizer, description="how parameters are updated")
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = Field(
        default="full", description="samples per step: an integer (1 = online learning) or `full`")
    epochs: int | None = Field(default=None, ge=1, description="passes over the training data (default 1; or give `steps`)")
    steps: int | None = Field(default=None, ge=1, description="optimizer steps across epochs (instead of `epochs`)")
    shuffle: bool = Field(default=True, description="reshuffle every epoch from the seeded generator; `false`: data order")
    seed: int = Field(default=0, ge=0, le=SEED_MAX, description="the same spec and seed give bit-identical results, alone or in a stack")
    dtype: Literal["float64", "float32"] = Field(default="float64", description="kept end to end")
    record: Record = Field(default_factory=Record, description="what every recorded step stores")
    diagnose: DiagnoseSettings | bool = Field(default=True, description="diagnoses found while training (dead units, vanishing "
                                              "gradients, a rising loss, ...): `true` with the default thresholds, an object to change "
                                              "them, `false` for none")

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size_shape(cls, value: Any) -> Any:
        if value == "full" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"must be a positive integer or 'full', got {value!r}")

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> JobSpec:
        if self.epochs is not None and self.steps is not None:
            raise InvalidField("steps", "give epochs or steps, not both")
        if self.epochs is None and self.steps is None:
            self.epochs = 1
        return self


class InvalidField(ValueError):
    """Raised inside validators to point at a sub-field of the model being validated."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def format_path(loc: tuple[Any, ...]) -> str:
    """`('model', 'layers', 1, 'activation')` -> `model.layers[1].activation`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _join(base: str, sub: str) -> str:
    if not base:
        return sub
    return base + sub if sub.startswith("[") else f"{base}.{sub}"


# Pydantic names the union member in error locations (`int`, `list[float]`, `function-after[...]`,
# a model's class name); those are not fields of the document.
_UNION_TAG = re.compile(r"^(int|float|bool|str|none|constrained-int|[a-z-]+\[.*\]|[A-Z][A-Za-z]+)$")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))


def errors_from_validation(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """Turn pydantic's errors into `(field_path, reason)` pairs, one per field."""
    found: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]))
        path = _join(prefix, format_path(loc))
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, InvalidField):
            path, reason = _join(path, ctx_error.field), ctx_error.reason
        else:
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown field"
            elif err["type"] == "literal_error":
                reason = f"{err.get('input')!r} is not one of the allowed values ({err['msg'].split('Input should be ')[-1]})"
        found.setdefault(path, reason)
    # A union reports one error per member; keep the most specific path.
    return [(p, r) for p, r in found.items() if not any(o != p and o.startswith(p) and o[len(p)] in ".[" for o in found)]


def parse_spec(document: Any) -> JobSpec:
    """Validate a job spec document (a dict from JSON); raise `SpecError` naming every bad field."""
    if not isinstance(document, dict):
        raise SpecError([("", "the job spec must be a JSON object")])
    try:
        return JobSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(errors_from_validation(exc)) from None


def _type_name(annotation: Any) -> str:
    """A field's type as the reference table shows it: `int`, `"a" \\| "b"`, `list of Layer`, …"""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (Union, UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (", optional" if type(None) in args else "")
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (list, tuple):
        inner = _type_name(args[0]) if args else "any"
        inner = f"({inner})" if " or " in inner else inner
        return f"list of {inner}" if origin is list else f"{len(args)} × {inner}"
    return {float: "number", int: "integer", bool: "boolean", str: "string"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _submodel(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds (directly or as a list of them), with the path suffix to reach its fields."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    if get_origin(annotation) is list and get_args(annotation) and isinstance(get_args(annotation)[0], type) \
            and issubclass(get_args(annotation)[0], BaseModel):
        return get_args(annotation)[0], "[]."
    models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(models) == 1 and (bool in get_args(annotation) or type(None) in get_args(annotation)):
        return models[0], "."  # a switch (`diagnose`: settings or true/false) or an option (`record.curvature`): its fields below
    return None


def field_table() -> str:
    """The Markdown table of every field of the job spec (docs/job-spec.md carries it; a test keeps them equal)."""
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            sub = _submodel(field.annotation)
            switch = sub is not None and get_origin(field.annotation) is not list and len(get_args(field.annotation)) > 1
            if field.is_required():
                default = "required"
            elif (sub is not None and not switch) or field.default_factory is not None:
                default = "see below"
            else:
                default = f"`{json.dumps(field.default)}`"
            kind = _type_name(field.annotation) if sub is None or switch else ("list of " if sub[1] == "[]." else "") + sub[0].__name__
            rows.append(f"| `{prefix}{name}` | {kind} | {default} | {field.description or ''} |")
            if sub is not None:
                walk(sub[0], f"{prefix}{name}{sub[1]}")

    walk(JobSpec, "")
    return "\n".join(rows)
