"""The post's learning-rate experiment as a sweep: the five samples, full batch, eta in
{0.001, 0.01, 0.1, 1, 10}; loss before, after one step and after 100 steps.
Run: python examples/learning_rate.py"""

from _common import POST_NETWORK, client_from_args

client = client_from_args(__doc__)
base = {"model": POST_NETWORK, "loss": "bce", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.1},
        "batch_size": "full", "steps": 101, "shuffle": False, "record": {"every": 1, "gradients": "none"}}
sweep = client.sweep({"name": "post-learning-rate", "experiment": "post", "base": base, "strategy": "grid",
                      "space": {"optimizer.lr": [0.001, 0.01, 0.1, 1, 10]}, "objective": {"metric": "loss", "goal": "minimize"},
                      "max_parallel": 5})
sweep = client.wait_sweep(sweep["id"], progress=False)
print(f"{'lr':>6} | {'before':>8} | {'1 step':>8} | {'100 steps':>9} | after 100 steps")
for row in sorted(sweep["leaderboard"], key=lambda r: r["params"]["optimizer.lr"]):
    loss = client.metrics(row["jobs"][0], ["loss"])["loss"]
    values = dict(zip(loss["steps"], loss["values"], strict=True))  # loss at step s = before update s = after s updates
    before, one, hundred = values[0], values[1], values[100]
    # judged where it ended, not by its first step: a rate can go down once and end above where it began
    verdict = "↓ learned" if hundred < before else "↑ worse than it began (overshoot)"
    print(f"{row['params']['optimizer.lr']:>6g} | {before:8.4f} | {one:8.4f} | {hundred:9.4f} | {verdict}")
