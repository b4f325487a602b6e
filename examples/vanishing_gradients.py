"""The post's question 5: 50 sigmoid layers against the same depth with ReLU and He init.
The first layer's gradient norm and the vanishing ratio (first over last layer) at step 0.
Run: python examples/vanishing_gradients.py"""

from _common import client_from_args

client = client_from_args(__doc__)


def deep(activation: str, init: str) -> dict:
    layers = [{"units": 16, "activation": activation}] * 50 + [{"units": 1, "activation": "sigmoid"}]
    return {"model": {"layers": layers, "init": init}, "loss": "bce", "data": {"builtin": "moons", "n_samples": 128},
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 5, "seed": 0, "record": {"every": 1}}


print(f"{'network':<28} | {'|dL/dW1| at step 0':>20} | {'first/last layer':>16}")
for label, activation, init in (("50 x sigmoid, Glorot", "sigmoid", "glorot_normal"), ("50 x ReLU, He", "relu", "he_normal")):
    job = client.wait(client.submit(deep(activation, init), name=label, experiment="vanishing")["id"], progress=False)
    m = client.metrics(job["id"], ["grad_norm/dense_1.weight", "vanishing_ratio"])
    print(f"{label:<28} | {m['grad_norm/dense_1.weight']['values'][0]:20.3e} | {m['vanishing_ratio']['values'][0]:16.3e}")
