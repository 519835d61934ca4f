"""Benchmark workloads: specs, FLOP/byte counts, seeded input data, and the symdiff graphs.

Every workload is "one call = the loss plus its gradients":
  * MLP workloads: gradients w.r.t. every weight and bias (W1, b1, W2, b2, ...), in that order;
  * W4 (elementwise): gradients w.r.t. the inputs x and y;
  * W6 (kind "cnn", LeNet-5 style): gradients w.r.t. every conv weight and bias (Wc1, bc1, ...), then
    every dense weight and bias (W1, b1, ...);
  * W7 (kind "conv", one conv layer): gradients w.r.t. the input x and the weight w.

The hand-written NumPy forward/backward lives in ``reference.py`` (convolutions: ``conv_models.py``);
the peers in ``peers.py``; the symdiff contenders in ``symdiff_contender.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SEED = 20240611


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    kind: str                      # "mlp" | "elementwise" | "cnn" | "conv"
    dtype: str                     # "float32" | "float64"
    sizes: tuple[int, ...] = ()    # MLP layer widths, input first: (784, 256, 256, 10)
    batch: int = 0
    act: str = ""                  # "relu" | "tanh"
    loss: str = ""                 # "ce" (softmax cross-entropy, mean over rows) | "mse"
    n: int = 0                     # elementwise length
    image: tuple[int, ...] = ()    # cnn / conv: one input image (C, H, W)
    convs: tuple[tuple[int, int, int], ...] = ()   # cnn / conv: (out channels, kernel, padding) per layer
    pool: int = 0                  # cnn: every conv is followed by act and a pool x pool max pool
    note: str = field(default="", compare=False)

    # ----------------------------------------------------------------- names
    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def param_names(self) -> list[str]:
        if self.kind not in ("mlp", "cnn"):
            return []
        conv = [nm for i in range(1, len(self.convs) + 1) for nm in (f"Wc{i}", f"bc{i}")] if self.kind == "cnn" else []
        return conv + [nm for i in range(1, self.n_layers + 1) for nm in (f"W{i}", f"b{i}")]

    @property
    def wrt(self) -> list[str]:
        """Names of the tensors the gradients are taken with respect to, in output order."""
        return {"mlp": self.param_names, "cnn": self.param_names, "conv": ["x", "w"]}.get(self.kind, ["x", "y"])

    @property
    def fixed(self) -> list[str]:
        """Feeds that get no gradient (the data and the labels of a network), before ``wrt`` in calls."""
        return ["x", "y"] if self.kind in ("mlp", "cnn") else []

    @property
    def output_names(self) -> list[str]:
        return ["loss"] + [f"d{nm}" for nm in self.wrt]

    # ----------------------------------------------------------------- costs
    def flops(self) -> int:
        """Matmul FLOPs of one call (2*M*N*K per matmul), forward + backward.

        Forward: one (B x din) @ (din x dout) per layer.  Backward: dW = a^T @ dz for every
        layer, and dx = dz @ W^T for every layer but the first (x needs no gradient).
        Elementwise work (bias, activations, softmax) is not counted.  W4: 0 (memory-bound).
        Convolutions count as the GEMMs they are (2 * N * O * OH * OW * C * K * K each for the
        forward product, the weight gradient and the input gradient, which the first conv of a network
        does not need); the dense layers of a cnn all need their input gradient.
        """
        if self.kind in ("mlp", "cnn"):
            total = 0
            for i in range(self.n_layers):
                mm = 2 * self.batch * self.sizes[i] * self.sizes[i + 1]
                total += mm + mm + (mm if i > 0 or self.kind == "cnn" else 0)
            return total + sum(c["flops"] * (3 if c["dx"] else 2) for c in conv_layers(self))
        if self.kind == "conv":
            return sum(3 * c["flops"] for c in conv_layers(self))
        return 0

    def min_bytes(self) -> int:
        """Compulsory memory traffic of one call: read every input once, write every output once."""
        item = np.dtype(self.dtype).itemsize
        if self.kind == "elementwise":
            return 4 * self.n * item                           # read x, y; write dx, dy
        B, s = self.batch, self.sizes
        image = B * int(np.prod(self.image)) * item
        conv_params = sum(c["params"] for c in conv_layers(self))
        if self.kind == "conv":                               # read x, w; write dx, dw
            return 2 * (image + conv_params * item)
        params = sum(s[i] * s[i + 1] + s[i + 1] for i in range(self.n_layers)) + conv_params
        if self.kind == "cnn":
            return image + 2 * params * item + B * 8 + item
        label = B * 8 if self.loss == "ce" else B * s[-1] * item
        return (B * s[0] + 2 * params) * item + label + item

    @property
    def bound(self) -> str:
        """Which machine peak this workload is compared against."""
        return "bandwidth" if self.kind == "elementwise" else f"gemm_{self.dtype}"

    def describe(self) -> str:
        if self.kind in ("cnn", "conv"):
            layers = ", ".join(f"conv {k}x{k} {c['cin']}->{o}" + (f" pad {p}" if p else "")
                               + (f", {self.act}, {self.pool}x{self.pool} max pool" if self.pool else "")
                               for (o, k, p), c in zip(self.convs, conv_layers(self)))
            dense = f", dense {'-'.join(map(str, self.sizes))} {self.act}, softmax cross-entropy" if self.sizes else ""
            loss = "" if self.sizes else ", loss sum(y*y)/2, grads x and w"
            return (f"{layers}{dense}{loss}, input {'x'.join(map(str, self.image))}, batch {self.batch}, "
                    f"{self.dtype}")
        if self.kind == "mlp":
            return (f"MLP {'-'.join(map(str, self.sizes))}, {self.act}, "
                    f"{'softmax cross-entropy' if self.loss == 'ce' else 'MSE'}, batch {self.batch}, {self.dtype}")
        return f"elementwise, n={self.n:,}, {self.dtype}"


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("W1", "MLP batch 64", "mlp", "float32", (784, 256, 256, 10), 64, "relu", "ce"),
    Workload("W2", "MLP batch 1 (latency)", "mlp", "float32", (784, 256, 256, 10), 1, "relu", "ce"),
    Workload("W3", "tiny MLP f64 (control)", "mlp", "float64", (2, 16, 16, 1), 1, "tanh", "mse"),
    Workload("W4", "elementwise 1M", "elementwise", "float32", n=1_000_000,
             note="loss = sum(log(1+exp(sin(x)*cos(y))) + tanh(x*y)^2)"),
    Workload("W5", "MLP 1024^2 batch 256 (compute-bound)", "mlp", "float32",
             (1024, 1024, 1024, 10), 256, "relu", "ce"),
    Workload("W6", "LeNet-5 batch 64", "cnn", "float32", (400, 120, 84, 10), 64, "relu", "ce",
             image=(1, 28, 28), convs=((6, 5, 2), (16, 5, 0)), pool=2,
             note="28x28 -> conv pad 2 -> 6x28x28 -> pool 14x14 -> conv -> 16x10x10 -> pool 5x5 -> 400"),
    Workload("W7", "conv 3x3 64->64 56x56 batch 8", "conv", "float32", batch=8, image=(64, 56, 56),
             convs=((64, 3, 1),)),
]}


def conv_layers(wl: Workload) -> list[dict]:
    """Per conv layer: input (cin, h, w), output (cout, oh, ow), kernel, padding, forward GEMM FLOPs,
    parameter count, whether its input needs a gradient (all but a network's first layer; W7's x does)."""
    out = []
    c, h, w = wl.image if wl.image else (0, 0, 0)
    for i, (o, k, p) in enumerate(wl.convs):
        oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
        out.append({"cin": c, "h": h, "w": w, "cout": o, "oh": oh, "ow": ow, "k": k, "pad": p,
                    "flops": 2 * wl.batch * o * oh * ow * c * k * k, "params": o * c * k * k + (o if wl.kind == "cnn" else 0),
                    "dx": i > 0 or wl.kind == "conv"})
        c, h, w = o, (oh // wl.pool if wl.pool else oh), (ow // wl.pool if wl.pool else ow)
    return out


def get(names: str | list[str] | None) -> list[Workload]:
    if not names:
        return list(WORKLOADS.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n.upper() not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    return [WORKLOADS[n.upper()] for n in names]


# --------------------------------------------------------------------------- data
def make_data(wl: Workload, seed: int = SEED) -> dict[str, np.ndarray]:
    """Seeded inputs and parameters for one call, keyed by the feed names (x, y, W1, b1, ...).

    Identical in every process, so every contender sees exactly the same numbers.
    """
    rng = np.random.default_rng([seed, int(wl.name[1:])])
    dt = np.dtype(wl.dtype)
    if wl.kind == "elementwise":
        return {"x": rng.standard_normal(wl.n).astype(dt),
                "y": rng.standard_normal(wl.n).astype(dt)}
    B, s = wl.batch, wl.sizes
    if wl.kind in ("cnn", "conv"):
        from .conv_models import conv_data
        return conv_data(wl, rng)
    if wl.loss == "ce":
        x = rng.random((B, s[0])).astype(dt)                 # pixel-like in [0, 1)
        y = rng.integers(0, s[-1], size=B).astype(np.int64)
    else:
        x = rng.standard_normal((B, s[0])).astype(dt)
        y = rng.standard_normal((B, s[-1])).astype(dt)
    data = {"x": x, "y": y}
    gain = 2.0 if wl.act == "relu" else 1.0                  # He / Xavier-like scaling
    for i in range(wl.n_layers):
        data[f"W{i + 1}"] = (rng.standard_normal((s[i], s[i + 1])) * np.sqrt(gain / s[i])).astype(dt)
        data[f"b{i + 1}"] = (0.1 * rng.standard_normal(s[i + 1])).astype(dt)   # nonzero: exercises db
    if wl.act == "relu":
        _clear_relu_kinks(wl, data, rng)
    return data


KINK_MARGIN = 3e-5   # |pre-activation| below this many standard deviations of its layer: redraw the example


def near_kink_rows(wl: Workload, data: dict[str, np.ndarray]) -> np.ndarray:
    """Examples (rows of x) with a hidden ReLU pre-activation within ``KINK_MARGIN`` standard deviations
    of 0, computed in float64."""
    h = data["x"].astype(np.float64)
    bad = np.zeros(h.shape[0], bool)
    for i in range(wl.n_layers - 1):
        z = h @ data[f"W{i + 1}"].astype(np.float64) + data[f"b{i + 1}"]
        bad |= (np.abs(z) < KINK_MARGIN * z.std()).any(axis=1)
        h = np.maximum(z, 0)
    return np.flatnonzero(bad)


def _clear_relu_kinks(wl: Workload, data: dict[str, np.ndarray], rng) -> None:
    """Redraw the examples whose hidden pre-activations sit at ReLU's kink. There a float32 product may
    round to either sign, so a correct contender's gradient can differ from the float64 reference by a
    whole mask entry (W5's data had one at 2e-7 standard deviations: OpenBLAS's float32 rounding flipped
    it, dW1 differed by 5e-3). Seeded, so still identical in every process."""
    x = data["x"]
    for _ in range(50):
        rows = near_kink_rows(wl, data)
        if rows.size == 0:
            return
        fresh = rng.random((rows.size, x.shape[1])) if wl.loss == "ce" else rng.standard_normal((rows.size, x.shape[1]))
        x[rows] = fresh.astype(x.dtype)


def as_float64(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same numbers upcast to float64 (labels untouched): input of the ground-truth reference."""
    return {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in data.items()}


# --------------------------------------------------------------------------- symdiff graphs
def build_symdiff(wl: Workload, sd) -> tuple[object, list, dict]:
    """Build the loss graph with the public symdiff API (``sd`` is the imported module).

    Returns (loss, wrt, info): the caller takes ``sd.grad(loss, wrt)`` itself, so it can time it.
    """
    info: dict = {}
    if wl.kind == "elementwise":
        x = sd.input("x", (wl.n,), dtype=wl.dtype)
        y = sd.input("y", (wl.n,), dtype=wl.dtype)
        t = sd.tanh(x * y)
        try:
            t2 = t ** 2
        except TypeError:                                  # no __pow__: same math, spelled t*t
            t2 = t * t
            info["note"] = "tanh(x*y)**2 unsupported, used t*t"
        loss = sd.sum(sd.log(1 + sd.exp(sd.sin(x) * sd.cos(y))) + t2)
        return loss, [x, y], info

    if wl.kind in ("cnn", "conv"):
        from .conv_models import build_symdiff_conv
        return build_symdiff_conv(wl, sd)
    B, s = wl.batch, wl.sizes
    x = sd.input("x", (B, s[0]), dtype=wl.dtype)
    if wl.loss == "ce":
        y = sd.input("y", (B,), dtype="int64")
    else:
        y = sd.input("y", (B, s[-1]), dtype=wl.dtype)
    act = {"relu": sd.relu, "tanh": sd.tanh}[wl.act]
    params = []
    h = x
    for i in range(wl.n_layers):
        W = sd.param(f"W{i + 1}", (s[i], s[i + 1]), dtype=wl.dtype)
        b = sd.param(f"b{i + 1}", (s[i + 1],), dtype=wl.dtype)
        params += [W, b]
        h = h @ W + b
        if i < wl.n_layers - 1:
            h = act(h)
    loss = sd.cross_entropy(h, y) if wl.loss == "ce" else sd.mse(h, y)
    return loss, params, info
