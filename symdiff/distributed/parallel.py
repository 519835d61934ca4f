"""``DataParallel``: one compiled graph run on shards of a batch across a Dask cluster, results combined.

``dp = DataParallel(outputs, client, split=("x", "y"), reduce="mean")``; ``dp(**values)`` cuts the inputs
named in ``split`` along axis 0 into shards (sizes differ by at most one, see ``sharding.even_sizes``), sends
every other input with each shard's task (one copy per shard), runs the graph on each shard
on a worker (compiled there once per process, ``portable.load``), and combines the shard results in shard
order (``sharding.combine``): for ``reduce="mean"`` output ``j`` is ``sum_i (n_i / N) out_ij``, which is
what the graph of the whole batch returns when ``j`` is a mean over the batch (or its gradient).

Shapes are fixed until graphs get a symbolic batch dimension, so each distinct shard size needs its own
graph: ``outputs`` is either a builder ``outputs(rows) -> graph`` (called once per distinct shard size, at
most two for a NumPy batch) or a graph whose split inputs already have the shard size (every shard then
has that size). Dask-array inputs are not gathered: their chunks along axis 0 are the shards and each runs
where its chunk is.

Faults: a shard whose worker dies is rerun by the scheduler on a survivor; if the call still fails with a
lost worker or connection, the whole call is resubmitted (up to ``retries`` times). Nothing is combined
until every shard has returned, so a retried call returns exactly what a clean one does.
"""
from __future__ import annotations

import uuid
from concurrent.futures import CancelledError
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from ..dims import Dim
from ..ir import Node
from ..signature import Signature
from ..simplify import simplify
from . import sharding
from .portable import PortableGraph, graph_of, load

Graph = Union[Node, Sequence[Node]]


def run_shard(graph: PortableGraph, shard: Mapping[str, Any], rest: Mapping[str, Any]) -> tuple:
    """The task a worker runs: the graph (compiled once per process) on one shard; returns its outputs."""
    fn = load(graph)
    values = {**rest, **shard}
    res = fn(**{name: values[name] for name in fn.input_names})
    return (res,) if graph.single else tuple(res)


def _fault_errors() -> tuple:
    """The exceptions that mean "a worker or connection was lost" (the call is retried), not a bug."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker
    return (KilledWorker, CommClosedError, CancelledError, ConnectionError)


def _is_dask(v: Any) -> bool:
    return type(v).__module__.startswith("dask.array")


class DataParallel:
    """Data-parallel evaluation of a graph over a Dask cluster.

    ``outputs``: a graph (what ``sd.compile`` takes) whose split inputs have the shard size, or a builder
    ``outputs(rows)`` returning that graph for ``rows`` rows. ``client``: a ``dask.distributed.Client``;
    None starts a ``LocalCluster`` (processes, one thread each) that :meth:`close` shuts down. ``split``:
    the inputs cut along axis 0. ``reduce``: "mean", "sum" or "concat", or one per output. ``shards``: how
    many shards a NumPy batch is cut into (default: the number of workers when created; it stays fixed, so
    results do not depend on how many workers are alive). ``timeout``: seconds a call may wait for its
    shards; ``retries``: resubmissions after a lost worker. ``backend``/``compile_options``: as
    ``sd.compile``'s (each worker compiles with them).
    """

    def __init__(self, outputs: Union[Graph, Callable[[int], Graph]], client=None, split: Sequence[str] = ("x", "y"),
                 reduce: Union[str, Sequence[str]] = "mean", *, shards: Optional[int] = None,
                 backend: Optional[str] = None, timeout: float = 300.0, retries: int = 2,
                 **compile_options) -> None:
        self.split = tuple(split)
        self.reduce = reduce
        self.backend, self.compile_options = backend, dict(compile_options)
        self.timeout, self.retries = float(timeout), int(retries)
        self.builder = outputs if callable(outputs) and not isinstance(outputs, Node) else None
        self.fixed_rows: Optional[int] = None
        self.symbolic_rows = False  # the graph's split axis is a named size (docs/symbolic_dims.md)
        self._graphs: dict[Any, tuple[PortableGraph, tuple]] = {}
        if self.builder is None:
            graph, names = self._pack(outputs)
            rows = {shape[0] for shape in names.values()}
            if len(rows) != 1:
                raise ValueError(f"DataParallel: the split inputs {sorted(names)} must share their leading size, "
                                 f"got {sorted(rows)}")
            row = rows.pop()
            if isinstance(row, Dim):  # a symbolic batch ("batch", ...): one graph serves every shard size
                self.symbolic_rows = True
                self._graphs[None] = (graph, tuple(names))
            else:
                self.fixed_rows = row
                self._graphs[sharding.shape_key(self.fixed_rows)] = (graph, tuple(names))
        self._own_cluster = None
        if client is None:
            from distributed import Client, LocalCluster
            self._own_cluster = LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None)
            client = Client(self._own_cluster)
        self.client = client
        self.shards = int(shards) if shards is not None else max(1, len(client.scheduler_info()["workers"]))
        self.attempts = 0  # calls submitted, retries included (a diagnostic)

    # -- graphs --------------------------------------------------------------------------------------------
    def _pack(self, outputs: Graph) -> tuple[PortableGraph, dict]:
        outs = [outputs] if isinstance(outputs, Node) else list(outputs)
        leaves = Signature(simplify(outs)).leaves
        names = {s.name: s.shape for s in leaves if s.name in self.split}
        for name, shape in names.items():
            if not shape:
                raise ValueError(f"DataParallel: split input {name!r} is a scalar; split inputs need a batch axis 0")
        if not names:
            raise ValueError(f"DataParallel: the graph reads none of the split inputs {list(self.split)}")
        return graph_of(outputs, self.backend, **self.compile_options), names

    def graph(self, rows: int) -> PortableGraph:
        """The graph a shard of ``rows`` rows runs (built on first use for each distinct shard size)."""
        key = None if self.symbolic_rows else sharding.shape_key(rows)
        if key not in self._graphs:
            if self.builder is None:
                raise ValueError(f"DataParallel: a shard of {rows} rows, but the graph was built for shards of "
                                 f"{self.fixed_rows} rows (pass a builder outputs(rows) for other sizes)")
            self._graphs[key] = self._pack(self.builder(rows))
        return self._graphs[key][0]

    def shard_sizes(self, rows: int) -> list[int]:
        """The shard sizes a NumPy batch of ``rows`` rows is cut into."""
        if self.fixed_rows is not None:
            if rows % self.fixed_rows:
                raise ValueError(f"DataParallel: a batch of {rows} rows does not split into shards of the graph's "
                                 f"{self.fixed_rows} rows (pass a builder outputs(rows) for uneven shards)")
            return [self.fixed_rows] * (rows // self.fixed_rows)
        return sharding.even_sizes(rows, self.shards)

    # -- calls ---------------------------------------------------------------------------------------------
    def __call__(self, **values):
        """What the graph of the whole batch returns for ``values`` (one array or a tuple)."""
        results, graph = self.run(values)
        return results[0] if graph.single else tuple(results)

    def run(self, values: Mapping[str, Any], per_shard: Optional[Mapping[str, Sequence[Any]]] = None
            ) -> tuple[list[np.ndarray], PortableGraph]:
        """The combined outputs (a list) and the graph of the first shard. ``per_shard``: inputs that take
        one value per shard (``{name: [value of shard 0, ...]}``), e.g. a per-shard random seed."""
        missing = [s for s in self.split if s not in values]
        if missing and len(missing) == len(self.split):
            raise TypeError(f"DataParallel: none of the split inputs {list(self.split)} was given")
        split = {k: v for k, v in values.items() if k in self.split}
        rest = {k: v for k, v in values.items() if k not in self.split}
        rows = {int(v.shape[0]) for v in split.values()}
        if len(rows) != 1:
            raise ValueError(f"DataParallel: the split inputs have different numbers of rows: "
                             f"{ {k: v.shape[0] for k, v in split.items()} }")
        n = rows.pop()
        dask_inputs = any(_is_dask(v) for v in split.values())
        sizes = self._dask_sizes(split, n) if dask_inputs else self.shard_sizes(n)
        graphs = [self.graph(s) for s in sizes]
        how = sharding.reductions(self.reduce, graphs[0].n_outputs)
        faults = _fault_errors()
        for attempt in range(self.retries + 1):
            self.attempts += 1
            try:
                parts = self._submit(split, rest, sizes, graphs, per_shard or {}, dask_inputs)
                return sharding.combine(parts, sizes, how), graphs[0]
            except faults:
                if attempt == self.retries:
                    raise
        raise AssertionError("unreachable")

    def _dask_sizes(self, split: dict, n: int) -> list[int]:
        """Rechunk the Dask split inputs to common chunks along axis 0 (whole along the others): the shards."""
        import dask.array as da
        first = next(v for v in split.values() if _is_dask(v))
        chunks = first.chunks[0]
        if self.fixed_rows is not None and set(chunks) != {self.fixed_rows}:
            chunks = tuple(self.shard_sizes(n))
        for k, v in split.items():
            v = v if _is_dask(v) else da.from_array(np.asarray(v), chunks=(chunks,) + tuple((d,) for d in v.shape[1:]))
            split[k] = v.rechunk((chunks,) + tuple((d,) for d in v.shape[1:]))
        return [int(c) for c in chunks]

    def _submit(self, split: dict, rest: dict, sizes: list[int], graphs: list, per_shard: Mapping[str, Sequence],
                dask_inputs: bool) -> list[tuple]:
        from distributed import wait
        client, token = self.client, uuid.uuid4().hex[:12]
        # the non-split inputs travel inside every shard's task (one copy per shard), not scattered: the
        # scheduler keeps a task's inputs until it finishes, so a shard whose worker dies reruns elsewhere
        # (scattered data on a dying worker is lost, and a broadcast to it can stall past any timeout)
        rest_f = dict(rest)
        extras = [{k: v[i] for k, v in per_shard.items()} for i in range(len(sizes))]
        if dask_inputs:
            import dask
            blocks = {k: v.to_delayed().reshape(-1) for k, v in split.items()}
            tasks = [dask.delayed(run_shard, pure=False)(g, {**{k: b[i] for k, b in blocks.items()}, **extras[i]},
                                                         rest_f, dask_key_name=f"symdiff-shard-{token}-{i}")
                     for i, g in enumerate(graphs)]
            futures = client.compute(tasks)
        else:
            futures = []
            for i, ((a, b), g) in enumerate(zip(sharding.bounds(sizes), graphs)):
                shard = {**{k: np.ascontiguousarray(v[a:b]) for k, v in split.items()}, **extras[i]}
                futures.append(client.submit(run_shard, g, shard, rest_f, key=f"symdiff-shard-{token}-{i}", pure=False))
        try:
            wait(futures, timeout=self.timeout)
            return client.gather(futures)
        finally:
            client.cancel(futures)  # release the results

    # -- lifetime ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Shut down the client and cluster this object started (a client passed in is left open)."""
        if self._own_cluster is not None:
            self.client.close()
            self._own_cluster.close()
            self._own_cluster = None

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DataParallel split={list(self.split)} shards={self.shards} reduce={self.reduce!r}>"


__all__ = ["DataParallel", "run_shard"]
