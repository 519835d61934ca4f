"""symdiff.distributed: pickling compiled functions, DataParallel against the single-process result, Dask-array
inputs, compile-once per worker, Trainer(client=...) against a local Trainer, and a worker killed mid-epoch.

One LocalCluster (2 worker processes, 1 thread each) serves the whole module (a session fixture); the module
runs in one xdist worker (``--dist loadgroup``). Every wait on the cluster is bounded (``TIMEOUT``).
Tolerance: shards sum their rows in another order than the whole batch, so float64 results agree to
``RTOL = 1e-12`` (relative, ``ATOL = 1e-13`` absolute), not bit for bit.
"""
from __future__ import annotations

import logging
import os
import pickle
import signal

import numpy as np
import pytest

import symdiff as sd
from symdiff import nn
from symdiff.distributed import portable, sharding

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install -e '.[distributed]')")
da = pytest.importorskip("dask.array", reason="dask[array] is not installed (pip install -e '.[distributed]')")
from symdiff.distributed import DataParallel, cache_stats  # noqa: E402

pytestmark = pytest.mark.xdist_group("dask")
TIMEOUT = 60.0
RTOL, ATOL = 1e-12, 1e-13


@pytest.fixture(scope="session")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
    c = distributed.Client(cluster, timeout=TIMEOUT)
    try:
        c.wait_for_workers(2, timeout=TIMEOUT)
        yield c
    finally:
        c.close(timeout=TIMEOUT)
        cluster.close(timeout=TIMEOUT)


def regression(rows: int):
    """[mean squared error of a linear model, its gradients] for a batch of ``rows`` rows (float64)."""
    x = sd.input("x", (rows, 5), "float64")
    y = sd.input("y", (rows,), "float64")
    w, b = sd.param("w", (5,), "float64"), sd.param("b", (), "float64")
    loss = sd.mean((sd.tanh(x @ w) + b - y) ** 2)
    return [loss, *sd.grad(loss, [w, b])]


def data(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((rows, 5)), "y": rng.standard_normal(rows), "w": rng.standard_normal(5),
            "b": np.float64(0.3)}


def close(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


# -- no cluster -----------------------------------------------------------------------------------------------

def test_even_sizes_differ_by_at_most_one_and_cover_the_batch():
    assert sharding.even_sizes(10, 4) == [3, 3, 2, 2] and sharding.even_sizes(8, 2) == [4, 4]
    assert sharding.bounds([3, 3, 2]) == [(0, 3), (3, 6), (6, 8)]
    with pytest.raises(ValueError, match="cannot fill"):
        sharding.even_sizes(1, 2)


def test_combine_weights_means_by_shard_size_and_concatenates_rows():
    parts = [(np.float64(1.0), np.ones((3, 2))), (np.float64(4.0), np.zeros((1, 2)))]
    mean, rows = sharding.combine(parts, [3, 1], ["mean", "concat"])
    assert mean == pytest.approx(1.75) and rows.shape == (4, 2)
    total, = sharding.combine([(np.ones(2),), (np.ones(2),)], [3, 1], ["sum"])
    assert np.array_equal(total, [2.0, 2.0])
    with pytest.raises(ValueError, match="concat"):
        sharding.combine([(np.ones((2, 2)),), (np.ones((1, 2)),)], [3, 1], ["mean"])


def test_a_compiled_function_pickles_as_its_graph_and_compiles_once_per_process():
    fn = sd.compile(regression(7), "llvm")
    blob = pickle.dumps(fn)
    assert b"ctypes" not in blob and len(blob) < 20_000  # the compressed graph, no machine code
    assert pickle.loads(blob) is fn  # this process already has it: no compile
    portable.clear_cache()
    before = cache_stats()["compiles"]
    again = pickle.loads(blob)
    assert again is not fn and cache_stats()["compiles"] == before + 1
    assert pickle.loads(blob) is again and cache_stats()["compiles"] == before + 1
    close(again(**data(7)), fn(**data(7)))


# -- DataParallel ------------------------------------------------------------------------------------------------

def test_a_pickled_llvm_function_runs_on_a_worker(client):
    fn = sd.compile(regression(7), "llvm")  # compiled here: the worker loads its objects from the disk cache
    worker = sorted(client.scheduler_info()["workers"])[0]
    got = client.submit(lambda f, v: f(**v), fn, data(7), workers=[worker], pure=False).result(timeout=TIMEOUT)
    close(got, fn(**data(7)))
    assert client.run(cache_stats, workers=[worker])[worker]["compiles"] >= 1


def test_data_parallel_equals_the_whole_batch_on_uneven_shards(client):
    values = data(11)  # shards of 6 and 5 rows: two graphs
    want = sd.compile(regression(11), "numpy")(**values)
    with DataParallel(regression, client, split=("x", "y"), backend="numpy", timeout=TIMEOUT) as dp:
        assert dp.shard_sizes(11) == [6, 5]
        close(dp(**values), want)
        before = client.run(cache_stats)
        close(dp(**values), want)  # the second step compiles nothing on any worker
        after = client.run(cache_stats)
    assert all(after[w]["compiles"] == before[w]["compiles"] for w in after)
    assert sum(after[w]["hits"] - before[w]["hits"] for w in after) == 2


def test_a_symbolic_batch_graph_serves_every_shard_size(client):
    """regression("batch"): one graph (docs/symbolic_dims.md) for the shards of 6 and 5 and a batch of 7."""
    with DataParallel(regression("batch"), client, backend="numpy", timeout=TIMEOUT) as dp:
        assert dp.symbolic_rows and dp.shard_sizes(11) == [6, 5] and dp.graph(6) is dp.graph(5)
        for rows in (11, 7):
            close(dp(**data(rows)), sd.compile(regression(rows), "numpy")(**data(rows)))


def test_sum_reduction_adds_the_shard_results(client):
    def total(rows):
        x = sd.input("x", (rows, 3), "float64")
        return [sd.sum(x * x), sd.sum(x, axis=0)]
    x = np.arange(12.0).reshape(4, 3)
    with DataParallel(total, client, split=("x",), reduce="sum", backend="numpy", timeout=TIMEOUT) as dp:
        close(dp(x=x), sd.compile(total(4), "numpy")(x=x))


def test_a_fixed_graph_takes_shards_of_its_own_size(client):
    values = data(12)
    with DataParallel(regression(4), client, backend="numpy", timeout=TIMEOUT) as dp:
        assert dp.shard_sizes(12) == [4, 4, 4]
        close(dp(**values), sd.compile(regression(12), "numpy")(**values))
        with pytest.raises(ValueError, match="builder"):
            dp(**data(10))


def test_dask_arrays_are_sharded_by_their_chunks_on_the_workers(client):
    rng = np.random.default_rng(5)
    x = da.random.default_rng(1).standard_normal((11, 5), chunks=(4, 5))  # made on the workers
    y = da.random.default_rng(2).standard_normal(11, chunks=4)
    w = rng.standard_normal(5)
    with DataParallel(regression, client, backend="numpy", timeout=TIMEOUT) as dp:
        got = dp(x=x, y=y, w=w, b=np.float64(0.0))
    xs, ys = client.compute([x, y], sync=True)  # the reference only: DataParallel never gathered them
    close(got, sd.compile(regression(11), "numpy")(x=xs, y=ys, w=w, b=np.float64(0.0)))


# -- training ------------------------------------------------------------------------------------------------------

def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8, dtype="float64", name="l1"), nn.Tanh(),
                         nn.Linear(8, 3, dtype="float64", name="l2"))


TRAIN = dict(input_shape=(6,), batch_size=15, lr=0.2, momentum=0.9, dtype="float64", progress=False, seed=3,
             weight_decay=1e-3, compile_options={"backend": "numpy"})


def blobs(n: int = 90):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    return rng.standard_normal((n, 6)) + y[:, None], y


def test_trainer_on_a_client_matches_a_local_trainer_over_three_epochs(client):
    X, y = blobs()
    local = nn.Trainer(mlp(), **TRAIN)
    local.fit(X, y, epochs=3)
    remote = nn.Trainer(mlp(), client=client, **TRAIN)
    remote.fit(X, y, epochs=3)
    assert remote.global_step == local.global_step == 18 and len(remote.history) == 3
    for k, v in local.state.items():
        np.testing.assert_allclose(remote.state[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(remote.history.loss, local.history.loss, rtol=1e-10)
    assert remote.history.acc == local.history.acc


def test_batch_norm_is_refused_with_a_reason(client):
    model = nn.Sequential(nn.Linear(6, 4, name="bn_l"), nn.BatchNorm1d(4, name="bn"))
    with pytest.raises(ValueError, match="batch norm"):
        nn.Trainer(model, client=client, input_shape=(6,), progress=False, compile_options={"backend": "numpy"})


def test_a_worker_killed_mid_epoch_loses_no_update(client):
    """Kill one worker process during the third step; the step reruns on the survivor (the nanny restarts the
    dead one) and the run ends with the parameters of a run without the fault. Runs last: it restarts a worker."""
    X, y = blobs(60)
    clean = nn.Trainer(mlp(), client=client, **TRAIN)
    clean.fit(X, y, epochs=2)
    faulty = nn.Trainer(mlp(), client=client, **TRAIN)
    pids = client.run(os.getpid)
    step = faulty.step

    def step_with_a_kill(xb, yb, lr=None):
        if faulty.global_step == 2:
            os.kill(pids[sorted(pids)[0]], signal.SIGKILL)
        return step(xb, yb, lr)

    faulty.step = step_with_a_kill
    faulty.fit(X, y, epochs=2)
    assert faulty.global_step == clean.global_step == 8
    for k, v in clean.state.items():
        assert np.array_equal(faulty.state[k], v), k  # same shards, same order: bit-identical
    assert faulty.history.loss == clean.history.loss
    client.wait_for_workers(2, timeout=TIMEOUT)
    assert sorted(client.run(os.getpid).values()) != sorted(pids.values())  # a worker really died
