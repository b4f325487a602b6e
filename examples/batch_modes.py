"""Online (batch 1) against mini-batch (8) against full batch on the moons, same number of epochs:
how many updates each makes and where its loss ends.  Run: python examples/batch_modes.py"""

from _common import client_from_args

client = client_from_args(__doc__)
base = {"model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
        "data": {"builtin": "moons", "n_samples": 200, "noise": 0.2, "validation_split": 0.25}, "optimizer": {"name": "sgd", "lr": 0.1},
        "epochs": 20, "seed": 3, "record": {"every": 1, "gradients": "none"}}
sweep = client.wait_sweep(client.sweep({"name": "batch-modes", "experiment": "batch-modes", "base": base, "strategy": "grid",
                                        "space": {"batch_size": [1, 8, "full"]}, "max_parallel": 3})["id"], progress=False)
print(f"{'batch':>6} | {'updates':>7} | {'final train loss':>16} | {'val loss':>8} | {'loss std (last 50 steps)':>24}")
for row in sorted(sweep["leaderboard"], key=lambda r: str(r["params"]["batch_size"])):
    job = client.get(row["jobs"][0])
    loss = client.metrics(job["id"], ["loss"])["loss"]["values"][-50:]
    mean = sum(loss) / len(loss)
    std = (sum((v - mean) ** 2 for v in loss) / len(loss)) ** 0.5
    print(f"{row['params']['batch_size']!s:>6} | {job['progress']['total_steps']:>7} | {job['summary']['final_train_loss']:16.4f} | "
          f"{job['summary']['final_val_loss']:8.4f} | {std:24.4f}")
