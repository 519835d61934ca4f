"""W1 (MLP 784-256-256-10, batch 64, loss + all gradients, float32) on llvm: a fixed-shape compile against one
with a symbolic batch ("batch", 784), per-call medians side by side in one run (docs/symbolic_dims.md).
Run: python benchmarks/symbolic_dims.py"""
import time, numpy as np, symdiff as sd
def mlp(rows):
    x = sd.input("x", (rows, 784)); y = sd.input("y", (rows,), "int64")
    w1, w2, w3 = sd.param("w1", (784, 256)), sd.param("w2", (256, 256)), sd.param("w3", (256, 10))
    loss = sd.cross_entropy(sd.relu(sd.relu(x @ w1) @ w2) @ w3, y)
    return [loss, *sd.grad(loss, [w1, w2, w3])]
rng = np.random.default_rng(0)
vals = {"x": rng.standard_normal((64, 784)).astype("f4"), "y": rng.integers(0, 10, 64),
        "w1": rng.standard_normal((784, 256)).astype("f4") * .05, "w2": rng.standard_normal((256, 256)).astype("f4") * .05,
        "w3": rng.standard_normal((256, 10)).astype("f4") * .05}
t = time.perf_counter(); ff = sd.compile(mlp(64), "llvm"); cf = time.perf_counter() - t
t = time.perf_counter(); fs = sd.compile(mlp("batch"), "llvm"); fs(**vals); cs = time.perf_counter() - t
def med(f, k=300):
    ts = []
    for _ in range(k):
        t = time.perf_counter(); f(**vals); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e6
for _ in range(2):
    a, b = med(ff), med(fs)
    print(f"W1 b64 llvm per call: fixed {a:.0f} us, symbolic {b:.0f} us, ratio {b/a:.3f}")
print(f"compile+first call: fixed {cf:.2f}s (compile only), symbolic {cs:.2f}s")
print(np.allclose(ff(**vals)[0], fs(**vals)[0]))
