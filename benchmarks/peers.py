"""The peers: hand-written NumPy backprop, PyTorch (eager, and torch.compile), JAX jit.

All of them compute exactly the symdiff workloads' math, written the way a user of that
framework would.  Inputs are converted to each framework's array type once, outside the timed
call (torch.from_numpy is zero-copy; jax.device_put once); a call returns loss + gradients.

* numpy: ``reference.fwd_bwd`` in the workload's dtype (the same code, in float64, is the
  ground truth of the gradient check).
* torch: forward + ``torch.autograd.grad`` (no .grad accumulation, no optimizer);
  ``torch-compile`` wraps the loss in ``torch.compile`` (compilation happens in the first call).
* jax: ``jax.jit(jax.value_and_grad(loss))``; calls block until ready.  float64 workloads enable
  ``jax_enable_x64`` (each workload runs in its own process).  XLA:CPU has no supported
  thread-count flag (jax-ml/jax#743, #1539); the harness pins every child to ``threads`` CPUs.
"""
from __future__ import annotations

import time

import numpy as np

from . import reference
from .harness import Prepared, Skip, outputs_list


# ============================================================================= numpy
def prepare_numpy(wl, data, threads: int) -> Prepared:
    info = {"version": f"numpy {np.__version__}"}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:                                    # pragma: no cover - informational only
        pass
    return Prepared(call=lambda: reference.fwd_bwd(wl, data), to_numpy=outputs_list, info=info)


# ============================================================================= torch
def _import_torch(threads: int):
    try:
        import torch
    except Exception as e:
        raise Skip(f"import torch failed: {type(e).__name__}: {e}") from e
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch


def _torch_loss_fn(wl, torch):
    """loss(*fixed, *wrt) in the order of ``wl.fixed`` and ``wl.wrt``."""
    F = torch.nn.functional
    if wl.kind in ("cnn", "conv"):
        return _torch_conv_loss_fn(wl, torch)
    if wl.kind == "elementwise":
        def loss_fn(x, y):
            return (torch.log(1 + torch.exp(torch.sin(x) * torch.cos(y))) + torch.tanh(x * y) ** 2).sum()
        return loss_fn

    L = wl.n_layers
    act = torch.relu if wl.act == "relu" else torch.tanh

    def loss_fn(x, y, *params):
        h = x
        for i in range(L):
            h = torch.addmm(params[2 * i + 1], h, params[2 * i])    # h @ W + b
            if i < L - 1:
                h = act(h)
        return F.cross_entropy(h, y) if wl.loss == "ce" else F.mse_loss(h, y)
    return loss_fn


def _torch_conv_loss_fn(wl, torch):
    F = torch.nn.functional
    from .workloads import conv_layers
    layers = conv_layers(wl)
    if wl.kind == "conv":
        def conv_loss(x, w):
            y = F.conv2d(x, w, padding=layers[0]["pad"])
            return (y * y).sum() * 0.5
        return conv_loss
    nc, L = len(layers), wl.n_layers

    def cnn_loss(x, y, *params):
        h = x
        for i, c in enumerate(layers):
            h = F.max_pool2d(torch.relu(F.conv2d(h, params[2 * i], params[2 * i + 1], padding=c["pad"])), wl.pool)
        h = h.flatten(1)
        for i in range(L):
            h = torch.addmm(params[2 * nc + 2 * i + 1], h, params[2 * nc + 2 * i])
            if i < L - 1:
                h = torch.relu(h)
        return F.cross_entropy(h, y)
    return cnn_loss


def _prepare(wl, data, threads: int, compiled: bool) -> Prepared:
    torch = _import_torch(threads)
    t = {k: torch.from_numpy(v) for k, v in data.items()}
    wrt = [t[nm].requires_grad_(True) for nm in wl.wrt]
    args = [t[nm] for nm in wl.fixed] + wrt
    fn = _torch_loss_fn(wl, torch)
    info = {"version": f"torch {torch.__version__}", "threads": torch.get_num_threads()}
    times: dict[str, float] = {}
    if compiled:
        t0 = time.perf_counter()
        try:
            fn = torch.compile(fn, dynamic=False)
        except Exception as e:
            raise Skip(f"torch.compile failed: {type(e).__name__}: {e}") from e
        times["wrap"] = time.perf_counter() - t0
        info["note"] = "torch.compile(loss) + autograd.grad; compile happens in the first call"

    def call():
        loss = fn(*args)
        grads = torch.autograd.grad(loss, wrt)
        return (loss.detach(), *grads)

    def to_numpy(res):
        return [r.detach().numpy() for r in res]

    return Prepared(call=call, to_numpy=to_numpy, compile=times, info=info)


def prepare_torch(wl, data, threads: int) -> Prepared:
    return _prepare(wl, data, threads, compiled=False)


def prepare_torch_compiled(wl, data, threads: int) -> Prepared:
    return _prepare(wl, data, threads, compiled=True)


# ============================================================================= jax
def prepare_jax(wl, data, threads: int) -> Prepared:
    try:
        import jax
        if wl.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
    except Exception as e:
        raise Skip(f"import jax failed: {type(e).__name__}: {e}") from e

    if wl.kind in ("cnn", "conv"):
        loss_fn = _jax_conv_loss_fn(wl, jax, jnp)
    elif wl.kind == "elementwise":
        def loss_fn(wrt, *fixed):
            x, y = wrt
            return jnp.sum(jnp.log(1 + jnp.exp(jnp.sin(x) * jnp.cos(y))) + jnp.tanh(x * y) ** 2)
    else:
        L = wl.n_layers
        act = jax.nn.relu if wl.act == "relu" else jnp.tanh

        def loss_fn(params, x, y):
            h = x
            for i in range(L):
                h = h @ params[2 * i] + params[2 * i + 1]
                if i < L - 1:
                    h = act(h)
            if wl.loss == "ce":
                return _jax_ce(jax, jnp, h, y)
            return jnp.mean((h - y) ** 2)

    jitted = jax.jit(jax.value_and_grad(loss_fn, argnums=0))      # loss(wrt tuple, *fixed)
    dev = {k: jax.device_put(v) for k, v in data.items()}
    args = (tuple(dev[n] for n in wl.wrt), *(dev[n] for n in wl.fixed))

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        compiled = jitted.lower(*args).compile()          # explicit trace + XLA compile
    except Exception as e:
        raise Skip(f"jax jit compile failed: {type(e).__name__}: {e}") from e
    times["compile"] = time.perf_counter() - t0

    def call():
        return jax.block_until_ready(jitted(*args))

    def to_numpy(res):
        loss, grads = res
        return [np.asarray(loss), *(np.asarray(g) for g in grads)]

    info = {"version": f"jax {jax.__version__}", "devices": str(jax.devices()),
            "note": "compile = jit(...).lower().compile(); first_call also compiles (jit cache)"}
    del compiled
    return Prepared(call=call, to_numpy=to_numpy, compile=times, info=info)


def _jax_ce(jax, jnp, h, y):
    logp = jax.nn.log_softmax(h, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _jax_conv_loss_fn(wl, jax, jnp):
    """loss(wrt tuple, *fixed): lax.conv_general_dilated in NCHW / OIHW, max pool by lax.reduce_window."""
    from .workloads import conv_layers
    layers = conv_layers(wl)
    lax = jax.lax

    def conv(h, w, p):
        return lax.conv_general_dilated(h, w, (1, 1), ((p, p), (p, p)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    if wl.kind == "conv":
        def conv_loss(wrt):
            x, w = wrt
            y = conv(x, w, layers[0]["pad"])
            return 0.5 * jnp.sum(y * y)
        return conv_loss
    nc, L, p = len(layers), wl.n_layers, wl.pool

    def cnn_loss(params, x, y):
        h = x
        for i, c in enumerate(layers):
            h = jax.nn.relu(conv(h, params[2 * i], c["pad"]) + params[2 * i + 1][:, None, None])
            h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, p, p), (1, 1, p, p), "VALID")
        h = h.reshape(h.shape[0], -1)
        for i in range(L):
            h = h @ params[2 * nc + 2 * i] + params[2 * nc + 2 * i + 1]
            if i < L - 1:
                h = jax.nn.relu(h)
        return _jax_ce(jax, jnp, h, y)
    return cnn_loss
