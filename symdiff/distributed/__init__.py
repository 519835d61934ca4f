"""Scale out on Dask: data-parallel evaluation (:class:`DataParallel`) and training (``Trainer(client=...)``)
of compiled graphs, compiled once per worker process from their serialized graph (:mod:`.portable`).

Needs ``dask[distributed]`` (``pip install -e ".[distributed]"``) for the cluster parts; pickling compiled
functions (:mod:`.portable`) needs nothing beyond symdiff. See docs/distributed.md.
"""
from __future__ import annotations

from .parallel import DataParallel, run_shard
from .portable import PortableGraph, cache_stats, clear_cache, graph_of, load, portable_of
from .sharding import REDUCTIONS, even_sizes

__all__ = ["DataParallel", "PortableGraph", "portable_of", "graph_of", "load", "cache_stats", "clear_cache",
           "even_sizes", "REDUCTIONS", "run_shard"]
