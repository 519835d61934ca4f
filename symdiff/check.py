"""Finite-difference gradient checker (central differences in float64).

Small leaves (``size <= max_full``) are checked entry by entry; larger ones along ``n_directions``
random unit directions v, comparing the analytic directional derivative <grad, v> with
(f(x + eps v) - f(x - eps v)) / (2 eps), so the check stays fast for big weight matrices (as JAX's
``check_grads`` and PyTensor's ``verify_grad``). float32 graphs are rebuilt in float64 first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .autodiff import grad
from .compiled import NumpyFunction
from .ir import Node, apply, const, toposort
from .signature import Signature


class GradCheckError(AssertionError):
    """Raised by check_grad(..., raise_on_failure=True) when a gradient disagrees."""


@dataclass
class LeafReport:
    name: str
    shape: tuple
    mode: str  # "full" (every entry) or "directions" (random projections)
    max_abs_err: float
    max_rel_err: float
    analytic: float  # at the worst entry / direction
    numeric: float
    worst: str  # which entry or direction
    passed: bool


@dataclass
class GradReport:
    leaves: list = field(default_factory=list)
    eps: float = 1e-6
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.leaves)

    def __getitem__(self, name: str) -> LeafReport:
        for r in self.leaves:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        head = f"{'leaf':<14}{'shape':<14}{'mode':<11}{'max abs err':>12}{'max rel err':>12}{'analytic':>14}{'numeric':>14}  at / ok"
        lines = [head, "-" * len(head)]
        for r in self.leaves:
            lines.append(f"{r.name:<14}{str(list(r.shape)):<14}{r.mode:<11}{r.max_abs_err:>12.3e}{r.max_rel_err:>12.3e}"
                         f"{r.analytic:>14.6e}{r.numeric:>14.6e}  {r.worst} {'PASS' if r.passed else 'FAIL'}")
        lines.append(f"eps={self.eps:g} rtol={self.rtol:g} atol={self.atol:g}: {'all passed' if self.passed else 'FAILED'}")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise GradCheckError("gradient check failed:\n" + str(self))


def to_float64(outputs: Sequence[Node]) -> list[Node]:
    """Rebuild a graph with every float leaf, constant and op in float64 (integer labels unchanged)."""
    memo: dict[Node, Node] = {}
    for n in toposort(outputs):
        if n.is_leaf:
            new = n if not n.dtype.startswith("float") else Node(n.op, (), n.attrs, n.shape, "float64", n.meta)
        elif n.op == "const":
            new = n if not n.dtype.startswith("float") else const(n.value.astype(np.float64), "float64")
        elif n.op == "cast" and n.dtype.startswith("float") and n.inputs[0].dtype.startswith("float"):
            new = memo[n.inputs[0]]
        else:
            attrs = dict(n.attrs)
            if "dtype" in attrs:
                attrs["dtype"] = "float64"
            new = apply(n.op, [memo[i] for i in n.inputs], **attrs)
        memo[n] = new
    return [memo[o] for o in outputs]


def check_grad(y: Node, wrt: Sequence[Node] | Node, values: dict, eps: float = 1e-6, rtol: float = 1e-5,
               atol: float = 1e-6, n_directions: int = 6, max_full: int = 24, seed: int = 0,
               raise_on_failure: bool = False) -> GradReport:
    """Compare symbolic gradients of scalar ``y`` with central finite differences in float64.

    ``values``: arrays for every leaf of ``y`` (by name). A leaf passes when every compared entry has
    ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.
    Returns a :class:`GradReport`; with ``raise_on_failure=True`` raises :class:`GradCheckError`.
    """
    wrt = [wrt] if isinstance(wrt, Node) else list(wrt)
    y64, *wrt64 = to_float64([y, *wrt])
    grads = grad(y64, wrt64)
    f_all = NumpyFunction([y64, *grads], single=False)
    f_y = NumpyFunction([y64], single=True)
    sig = Signature([y64, *wrt64])  # a wrt leaf that y does not use has gradient 0 (and needs a value)
    missing = [n for n in sig.names if n not in values]
    if missing:
        raise TypeError(f"check_grad: no values for leaf/leaves {missing}")
    base = {n: np.array(values[n], dtype=spec.dtype) for n, spec in zip(sig.names, sig.leaves)}

    def call(f: NumpyFunction, vals: dict):
        return f(**{n: vals[n] for n in f.input_names})

    out = call(f_all, base)
    analytic = out[1:]
    rng = np.random.default_rng(seed)
    report = GradReport(eps=eps, rtol=rtol, atol=atol)

    def f_at(name: str, x: np.ndarray) -> float:
        return float(call(f_y, {**base, name: x}))

    for w, g in zip(wrt64, analytic):
        x0 = base[w.name]
        if x0.size <= max_full:
            mode, num, ana, labels = "full", [], [], []
            for idx in np.ndindex(*x0.shape):
                xp, xm = x0.copy(), x0.copy()
                xp[idx] += eps
                xm[idx] -= eps
                num.append((f_at(w.name, xp) - f_at(w.name, xm)) / (2 * eps))
                ana.append(float(g[idx]))
                labels.append(f"[{','.join(map(str, idx))}]")
        else:
            mode, num, ana, labels = "directions", [], [], []
            for k in range(n_directions):
                v = rng.standard_normal(x0.shape)
                v /= np.linalg.norm(v)
                num.append((f_at(w.name, x0 + eps * v) - f_at(w.name, x0 - eps * v)) / (2 * eps))
                ana.append(float(np.sum(g * v)))
                labels.append(f"dir{k}")
        a, n = np.array(ana), np.array(num)
        if not a.size:  # an empty leaf (a dimension of 0) has nothing to check
            report.leaves.append(LeafReport(w.name, w.shape, mode, 0.0, 0.0, 0.0, 0.0, "(empty)", True))
            continue
        abs_err = np.abs(a - n)
        scale = np.maximum(np.abs(a), np.abs(n))
        rel_err = abs_err / np.maximum(scale, 1e-300)
        with np.errstate(invalid="ignore"):
            bad = ~(abs_err <= atol + rtol * scale)  # NaN counts as a failure
        k = int(np.argmax(np.where(np.isnan(abs_err), np.inf, abs_err))) if abs_err.size else 0
        report.leaves.append(LeafReport(w.name, w.shape, mode, float(np.nanmax(abs_err, initial=0.0)) if not np.isnan(abs_err).all() else float("nan"),
                                        float(np.nanmax(rel_err, initial=0.0)), float(a[k]), float(n[k]), labels[k],
                                        not bool(np.any(bad))))
    if raise_on_failure:
        report.raise_if_failed()
    return report
