"""Dead ReLUs: a learning rate that overshoots pushes hidden units below zero for every sample;
their gradients are then exactly zero and they never come back. The fraction of dead units (z <= 0
on the whole batch) per step, at a gentle and at an overshooting learning rate, and what the lab's
diagnoses say of each (GET /api/v1/jobs/{id}/diagnoses).
Run: python examples/dead_relu.py"""

from _common import client_from_args

client = client_from_args(__doc__)


def spec(lr: float) -> dict:
    return {"model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}], "init": "he_normal"},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 200, "standardize": True},
            "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9}, "batch_size": 10, "epochs": 10, "seed": 7, "record": {"every": 20}}


for lr in (0.5, 1.0):
    job = client.wait(client.submit(spec(lr), name=f"dead-relu-lr{lr}", experiment="dead-relu")["id"], progress=False)
    dead = client.metrics(job["id"], ["dead_fraction/dense_1"])["dead_fraction/dense_1"]["values"]
    trail = " ".join(f"{v:.2f}" for v in dead[::2])
    print(f"lr {lr:<4} dead fraction every 40 steps: {trail}   final train accuracy {job['summary']['final_train_accuracy']:.3f}")
    found = [d for d in client.diagnoses(job["id"]) if d["severity"] != "info"]
    print("        " + ("; ".join(f"{d['kind']}: {d['sentence']}" for d in found) if found else "no diagnosis"))
