"""The post's walkthrough: one step of backprop on its single sample, trained by the service,
and the backward pass printed as the post's trace table.  Run: python examples/walkthrough.py"""

from _common import POST_NETWORK, client_from_args

client = client_from_args(__doc__)
spec = {"model": POST_NETWORK, "loss": "bce", "data": {"X": [[0.5, 0.1]], "y": [0]}, "optimizer": {"name": "sgd", "lr": 0.1},
        "steps": 1, "shuffle": False, "record": {"every": 1, "gradients": "full", "trace": True}}
job = client.wait(client.submit(spec, name="walkthrough", experiment="post")["id"], progress=False)
print(client.trace_table(job["id"], step=0))
model = client.model(job["id"])
print(f"updated W2 = {[round(w, 4) for w in model['weights'][1][0]]}, W1 = {[[round(w, 4) for w in row] for row in model['weights'][0]]}")
print(f"loss = {job['summary']['final_loss']:.5f} (the post prints 0.767; -ln(1 - sigmoid(0.146)) = 0.76881)")
