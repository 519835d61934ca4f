"""The lecture's MLP as a plain model file: 784 -> 256 -> ReLU -> 256 -> ReLU -> 10, cross-entropy.

Defines the graph at module level (float32, batch 64): ``loss`` is the scalar to differentiate, the
``sd.param`` leaves carry their initialisers (Kaiming normal weights, zero biases). The command line
compiles it with its gradient:

    symdiff compile examples/mlp.py

Run directly, it compiles loss + gradients and times a few calls on random data.
"""
import symdiff as sd
from symdiff.nn.init import kaiming_normal, zeros

BATCH, D0, D1, D2, D3 = 64, 784, 256, 256, 10

x = sd.input("x", (BATCH, D0), "float32")          # flattened 28x28 images
labels = sd.input("labels", (BATCH,), "int64")
W1 = sd.param("W1", (D0, D1), "float32", init=kaiming_normal)
b1 = sd.param("b1", (D1,), "float32", init=zeros)
W2 = sd.param("W2", (D1, D2), "float32", init=kaiming_normal)
b2 = sd.param("b2", (D2,), "float32", init=zeros)
W3 = sd.param("W3", (D2, D3), "float32", init=kaiming_normal)
b3 = sd.param("b3", (D3,), "float32", init=zeros)

s1 = x @ W1 + b1
z1 = sd.relu(s1)
s2 = z1 @ W2 + b2
z2 = sd.relu(s2)
logits = z2 @ W3 + b3
loss = sd.cross_entropy(logits, labels)

params = [W1, b1, W2, b2, W3, b3]

if __name__ == "__main__":
    import time

    import numpy as np

    import symdiff.nn as nn

    t0 = time.perf_counter()
    grads = sd.grad(loss, params)
    f = sd.compile([loss, *grads])
    print(f"differentiated and compiled loss + {len(grads)} gradients in {time.perf_counter() - t0:.2f} s "
          f"({f.backend} backend)")
    rng = np.random.default_rng(0)
    feed = {"x": rng.random((BATCH, D0), dtype=np.float32), "labels": rng.integers(0, D3, BATCH),
            **nn.init_values(loss, seed=0)}
    out = f(**feed)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        f(**feed)
    dt = (time.perf_counter() - t0) / reps
    print(f"loss {float(out[0]):.4f} (log 10 = {np.log(10):.4f}); {dt * 1e3:.2f} ms per call, "
          f"{BATCH / dt:.0f} samples/s")
