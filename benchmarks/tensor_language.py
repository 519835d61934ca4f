"""Tensor-language workloads side by side: a gather (embedding lookup + scatter-add gradient) and a batched
product (attention scores over a batch of heads), symdiff's backends against NumPy, PyTorch and JAX.

    python benchmarks/tensor_language.py [--quick] [--only embed,attention] [--threads 2]

Both workloads are "one call = the loss plus its gradients", float32:

* embed: ``E`` (V, D) table, ``idx`` (B,) int64 with repeated rows, ``W`` (D,) weights;
  ``loss = sum(tanh(E[idx]) @ W)``; gradients w.r.t. ``E`` (a scatter-add of B rows) and ``W``.
* attention: ``Q, K, V`` (H, S, d) for H heads, ``G`` (H, S, d) fixed weights;
  ``loss = sum(softmax(Q K^T / sqrt(d)) V * G)``; gradients w.r.t. Q, K and V. FLOPs: forward 2 batched
  products (4 H S^2 d), backward 4 more (8 H S^2 d).

Each contender is checked against the float64 NumPy reference before timing. Medians of one run; the GEMM
peak (large numpy matmul, measured in the same run) gives the fraction of the machine's FMA throughput.
All contenders run in this process (torch pinned to ``--threads`` threads); NumPy is single-call BLAS.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Skip, TimingPlan, fmt_time, time_calls  # noqa: E402

SEED = 20261202


# -- workloads ---------------------------------------------------------------------------------------------
def embed_data(quick: bool) -> dict:
    V, D, B = (5000, 64, 1024) if quick else (50000, 128, 8192)
    r = np.random.default_rng(SEED)
    return {"E": (0.1 * r.standard_normal((V, D))).astype(np.float32),
            "idx": r.integers(0, V // 4, B).astype(np.int64),  # a quarter of the rows: many repeats
            "W": r.standard_normal(D).astype(np.float32)}


def attention_data(quick: bool) -> dict:
    H, S, d = (8, 64, 32) if quick else (32, 128, 64)
    r = np.random.default_rng(SEED + 1)
    return {k: r.standard_normal((H, S, d)).astype(np.float32) for k in "QKVG"}


def attention_flops(data: dict) -> int:
    H, S, d = data["Q"].shape
    return 12 * H * S * S * d  # 2 forward + 4 backward batched products of 2*H*S*S*d each


# -- NumPy (hand-written backward; float64 copy is the reference) --------------------------------------------
def embed_numpy(data: dict) -> list:
    E, idx, W = data["E"], data["idx"], data["W"]
    h = np.tanh(E[idx])  # (B, D)
    loss = (h @ W).sum()
    dh = np.broadcast_to(W, h.shape) * (1 - h * h)
    dE = np.zeros_like(E)
    np.add.at(dE, idx, dh)
    return [loss, dE, h.sum(axis=0)]


def attention_numpy(data: dict) -> list:
    Q, K, V, G = data["Q"], data["K"], data["V"], data["G"]
    c = 1.0 / np.sqrt(Q.shape[-1]).astype(Q.dtype)
    s = Q @ K.transpose(0, 2, 1) * c
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    loss = (p @ V * G).sum()
    dV = p.transpose(0, 2, 1) @ G
    dp = G @ V.transpose(0, 2, 1)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * c
    return [loss, ds @ K, ds.transpose(0, 2, 1) @ Q, dV]


# -- symdiff -----------------------------------------------------------------------------------------------
def symdiff_prepare(name: str, data: dict, backend: str):
    import symdiff as sd
    leaves = {k: sd.input(k, v.shape, v.dtype.name) for k, v in data.items()}
    if name == "embed":
        E, idx, W = leaves["E"], leaves["idx"], leaves["W"]
        loss = sd.sum(sd.tanh(E[idx]) @ W)
        wrt = [E, W]
    else:
        Q, K, V, G = (leaves[k] for k in "QKVG")
        scores = Q @ sd.swapaxes(K, -1, -2) * (1.0 / np.sqrt(Q.shape[-1]))
        loss = sd.sum(sd.softmax(scores, axis=-1) @ V * G)
        wrt = [Q, K, V]
    t0 = time.perf_counter()
    f = sd.compile([loss, *sd.grad(loss, wrt)], backend)
    compile_s = time.perf_counter() - t0
    args = {k: data[k] for k in f.input_names}
    return (lambda: f(**args)), compile_s


# -- peers -------------------------------------------------------------------------------------------------
def torch_prepare(name: str, data: dict, threads: int):
    try:
        import torch
    except Exception as e:  # pragma: no cover - depends on the machine
        raise Skip(f"import torch failed: {e}")
    torch.set_num_threads(threads)
    t = {k: torch.from_numpy(v) for k, v in data.items()}
    if name == "embed":
        wrt = [t["E"].requires_grad_(True), t["W"].requires_grad_(True)]

        def loss_fn():
            return (torch.tanh(torch.nn.functional.embedding(t["idx"], t["E"])) @ t["W"]).sum()
    else:
        wrt = [t[k].requires_grad_(True) for k in "QKV"]

        def loss_fn():
            s = t["Q"] @ t["K"].transpose(1, 2) / np.sqrt(t["Q"].shape[-1])
            return (torch.softmax(s, -1) @ t["V"] * t["G"]).sum()

    def call():
        loss = loss_fn()
        return (loss.detach(), *torch.autograd.grad(loss, wrt))
    return call, 0.0


def jax_prepare(name: str, data: dict, threads: int):
    try:
        import jax
        import jax.numpy as jnp
    except Exception as e:  # pragma: no cover
        raise Skip(f"import jax failed: {e}")
    if name == "embed":
        def loss_fn(E, W, idx):
            return jnp.sum(jnp.tanh(E[idx]) @ W)
        vg, args = jax.value_and_grad(loss_fn, argnums=(0, 1)), (data["E"], data["W"], data["idx"])
    else:
        def loss_fn(Q, K, V, G):
            s = Q @ jnp.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
            return jnp.sum(jax.nn.softmax(s, -1) @ V * G)
        vg, args = jax.value_and_grad(loss_fn, argnums=(0, 1, 2)), tuple(data[k] for k in "QKVG")
    args = tuple(jax.device_put(a) for a in args)
    t0 = time.perf_counter()
    jitted = jax.jit(vg)
    jax.block_until_ready(jitted(*args))
    return (lambda: jax.block_until_ready(jitted(*args))), time.perf_counter() - t0


def flatten(res) -> list:
    out = []
    for r in res:
        if isinstance(r, (tuple, list)):
            out += flatten(r)
        else:
            out.append(np.asarray(r.detach().numpy() if hasattr(r, "detach") else r, dtype=np.float64))
    return out


def check(label: str, got: list, want: list) -> None:
    assert len(got) == len(want), f"{label}: {len(got)} outputs, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        scale = max(1.0, float(np.abs(w).max()))
        err = float(np.abs(g - w).max()) / scale
        if err > 2e-3:
            raise AssertionError(f"{label}: output {k} differs from the float64 reference (max rel err {err:.2e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="embed,attention")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    plan = TimingPlan.make(a.quick, None)
    from benchmarks.machine import measure_peaks
    peak = measure_peaks(quick=True, threads=a.threads)["gemm_float32"]["gflops"]
    print(f"machine: float32 GEMM peak (numpy, {a.threads} threads) {peak:.1f} GFLOP/s; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
    for name in a.only.split(","):
        data = (embed_data if name == "embed" else attention_data)(a.quick)
        ref_fn = embed_numpy if name == "embed" else attention_numpy
        want = flatten(ref_fn({k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in data.items()}))
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in data.items())
        print(f"\n== {name}: {shapes}")
        rows = []
        contenders = {"symdiff-llvm": lambda: symdiff_prepare(name, data, "llvm"),
                      "symdiff-numpy": lambda: symdiff_prepare(name, data, "numpy"),
                      "numpy": lambda: ((lambda: ref_fn(data)), 0.0),
                      "torch": lambda: torch_prepare(name, data, a.threads),
                      "jax": lambda: jax_prepare(name, data, a.threads)}
        for label, prep in contenders.items():
            try:
                call, compile_s = prep()
                check(label, flatten(call()), want)
            except Exception as e:  # a contender that cannot run is reported, not fatal
                rows.append((label, None, f"skipped: {type(e).__name__}: {str(e)[:120]}"))
                continue
            t = time_calls(call, plan)["median_s"]
            extra = f"compile {compile_s:.2f} s" if compile_s else ""
            if name == "attention":
                extra += f"  {attention_flops(data) / t / 1e9:.1f} GFLOP/s = {attention_flops(data) / t / 1e9 / peak:.0%} of peak"
            rows.append((label, t, extra))
        base = next((t for lab, t, _ in rows if lab == "symdiff-llvm" and t), None)
        for label, t, extra in rows:
            ratio = f"{t / base:6.2f}x" if t and base else "      "
            print(f"  {label:14s} {fmt_time(t):>10s}  {ratio} of symdiff-llvm  {extra}")


if __name__ == "__main__":
    main()
