"""Shards of a batch and the reductions that put their results back together.

A batch of ``N`` rows is cut into ``k`` contiguous shards whose sizes differ by at most one
(:func:`even_sizes`), so a fixed-shape graph needs at most two compiles. Each shard ``i`` (``n_i`` rows)
returns the outputs of the graph on its rows; output ``j`` of the whole batch is

* ``"mean"``: ``sum_i (n_i / N) * out_ij`` -- a mean over the batch is the size-weighted mean of the
  shard means (a gradient of a mean loss is the same weighted mean of the shard gradients);
* ``"sum"``: ``sum_i out_ij``;
* ``"concat"``: the shard outputs stacked along axis 0 (per-row outputs such as a model's predictions).

The shards are combined in shard order whatever worker ran them, so a result depends on the shard
sizes only, not on scheduling: a retried or rescheduled shard gives bit-identical totals.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np

from ..ir import Node

REDUCTIONS = ("mean", "sum", "concat")


def even_sizes(n: int, k: int) -> list[int]:
    """``k`` shard sizes summing to ``n``, the first ``n % k`` one larger: ``even_sizes(10, 4) == [3, 3, 2, 2]``."""
    if k < 1:
        raise ValueError(f"shards: need at least one shard, got {k}")
    if n < k:
        raise ValueError(f"shards: a batch of {n} rows cannot fill {k} shards (each needs at least one row)")
    q, r = divmod(n, k)
    return [q + 1 if i < r else q for i in range(k)]


def bounds(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of consecutive shards of ``sizes`` rows."""
    stops = np.cumsum(sizes).tolist()
    return [(int(b - s), int(b)) for s, b in zip(sizes, stops)]


def shape_key(rows: int) -> Optional[int]:
    """The key under which a shard of ``rows`` rows of a fixed-shape graph finds its compiled graph (one
    graph per shard size; a graph with a symbolic batch, ``("batch", ...)``, is one graph for every shard:
    ``DataParallel`` keys it None)."""
    return int(rows)


def reductions(reduce: Union[str, Sequence[str]], n_outputs: int) -> list[str]:
    """One reduction name per output (``reduce`` a name for all, or one per output)."""
    names = [reduce] * n_outputs if isinstance(reduce, str) else list(reduce)
    if len(names) != n_outputs:
        raise ValueError(f"reduce: {len(names)} reductions for {n_outputs} outputs")
    bad = [r for r in names if r not in REDUCTIONS]
    if bad:
        raise ValueError(f"reduce: {bad[0]!r} is not one of {', '.join(REDUCTIONS)}")
    return names


def _mean(parts: list[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    total = float(sum(sizes))
    acc = parts[0] * (sizes[0] / total)
    for p, n in zip(parts[1:], sizes[1:]):
        acc = acc + p * (n / total)
    return np.asarray(acc, dtype=parts[0].dtype)


def _sum(parts: list[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    acc = parts[0]
    for p in parts[1:]:
        acc = acc + p
    return np.asarray(acc, dtype=parts[0].dtype)


def _concat(parts: list[np.ndarray], sizes: Sequence[int]) -> np.ndarray:
    for p, n in zip(parts, sizes):
        if p.ndim == 0 or p.shape[0] != n:
            raise ValueError(f"reduce='concat': a shard of {n} rows returned shape {p.shape}; concat needs the "
                             f"shard's rows on axis 0")
    return np.concatenate(parts, axis=0)


COMBINE: dict[str, Callable[[list, Sequence[int]], np.ndarray]] = {"mean": _mean, "sum": _sum, "concat": _concat}


def combine(results: Sequence[Sequence[np.ndarray]], sizes: Sequence[int], how: Sequence[str]) -> list[np.ndarray]:
    """Output ``j`` of the whole batch from ``results[i][j]`` (shard ``i``, ``sizes[i]`` rows) by ``how[j]``."""
    out = []
    for j, name in enumerate(how):
        parts = [np.asarray(r[j]) for r in results]
        if name != "concat" and len({p.shape for p in parts}) > 1:
            raise ValueError(f"reduce={name!r}: output {j} has shapes {[p.shape for p in parts]} on different shards; "
                             f"only outputs that do not depend on the batch size can be averaged or added "
                             f"(use 'concat' for per-row outputs)")
        out.append(COMBINE[name](parts, sizes))
    return out


def split_rows(leaves: Sequence[Node], split: Sequence[str], rows: int) -> dict[str, tuple]:
    """``{name: shape}`` of the split inputs of a graph, checking each has ``rows`` on axis 0."""
    found = {leaf.name: leaf.shape for leaf in leaves if leaf.name in split}
    for name, shape in found.items():
        if not shape or shape[0] != rows:
            raise ValueError(f"split input {name!r} has shape {shape}; every split input needs the batch ({rows} "
                             f"rows) on axis 0")
    return found


__all__ = ["even_sizes", "bounds", "shape_key", "reductions", "combine", "REDUCTIONS"]
