"""A trainer's state as stored bytes: an .npz and JSON, no pickle, and exactly the same training after."""

from __future__ import annotations

from engine.training import Trainer
from services.store import checkpoints
from tests.support.specs import IRIS as SPEC


def test_a_checkpoint_round_trips_exactly_without_pickle():
    trainer = Trainer(SPEC)
    for _ in range(123):
        trainer.train_step()
    data = checkpoints.encode(trainer.state_dict())  # decode() loads it with allow_pickle=False
    restored = Trainer(SPEC)
    restored.load_state_dict(checkpoints.decode(data))
    for _ in range(200):
        a, b = trainer.train_step(), restored.train_step()
        assert a.loss == b.loss and a.metrics == b.metrics
    assert trainer.model() == restored.model()
