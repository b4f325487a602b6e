"""A job's diagnoses as the API shows them (engine/diagnoses.py finds them; docs/diagnoses.md explains each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from engine.diagnoses import KINDS

from .common import Out

DiagnosisKind = Literal[KINDS]  # type: ignore[valid-type]


class Diagnosis(Out):
    id: int
    kind: DiagnosisKind = Field(description="dead_units, layer_dead, vanishing_gradients, exploding_gradients, saturated_units, "
                                            "loss_rising, diverged, plateau, overfitting, edge_of_stability")
    severity: Literal["info", "warning", "error"]
    step: int = Field(description="where it began: the first recorded step of the stretch it held over")
    ended_step: int | None = Field(description="where it stopped holding; null while it holds (a dead unit rarely comes back)")
    layer: str | None = Field(description="the layer (`dense_1`) it is about; null when it is the whole network's")
    sentence: str = Field(description="what it means, in one plain sentence")
    evidence: dict[str, Any] = Field(description="the values and the thresholds they crossed")
    found_at: datetime


class DiagnosisList(Out):
    job_id: int
    diagnoses: list[Diagnosis] = Field(description="in the order found")
