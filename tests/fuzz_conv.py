"""The convolution step of the fuzz generator (tests/fuzz_graphs.py ``Builder.op_conv``)."""
from __future__ import annotations

import numpy as np

import symdiff as sd
from symdiff import ops_conv


def op_conv(self) -> None:
    """A 1-D or 2-D convolution or transposed convolution of a pool node seen as (N, C, *spatial)
    (random stride, padding, dilation, groups; the weight a new leaf)."""
    x = self.pick()
    b = self.bound[x]
    if x.size == 0:
        return self.op_unary()
    if x.ndim < 3:
        x = sd.reshape(x, (1, 1, x.size))
    if x.ndim > 4:
        x = sd.reshape(x, x.shape[:3] + (-1,))
    k = x.ndim - 2
    c = x.shape[1]
    groups = self.ch.choice([g for g in (1, 2, 3) if c % g == 0])
    transpose = self.ch.coin(0.35)
    stride = tuple(self.ch.int(1, 2) for _ in range(k))
    dil = tuple(self.ch.int(1, 2) for _ in range(k))
    kernel = tuple(self.ch.int(1, max(1, min(3, (s - 1) // r + 1))) for s, r in zip(x.shape[2:], dil))
    o = groups * self.ch.int(1, 2)
    if groups == 1 and self.ch.coin(0.1):
        o = 32 + self.ch.int(0, 1)  # products of >= 32 rows read their im2col through offset tables (codegen/gather.py)
    if self.ch.coin(0.25):  # sliding windows reduced over the window axes (pooling: max or mean)
        win = ops_conv.window(x, kernel, stride, dil)
        axes = tuple(range(2, 2 + k))
        y = sd.max(win, axis=axes) if self.ch.coin(0.5) else sd.mean(win, axis=axes)
        return self.add(y, b, "window")
    if transpose:
        w = self.leaf((c, o // groups) + kernel)
        pad = tuple(self.ch.int(0, r * (kk - 1) // 2) for kk, r in zip(kernel, dil))
        y = getattr(sd, f"conv_transpose{k}d")(x, w, stride=stride, padding=pad, groups=groups, dilation=dil)
        fan = c * max(1, int(np.prod(kernel)) // min(stride))
    else:
        w = self.leaf((o, c // groups) + kernel)
        pad = tuple(self.ch.int(0, 1) for _ in range(k))
        y = getattr(sd, f"conv{k}d")(x, w, stride=stride, padding=pad, dilation=dil, groups=groups)
        fan = (c // groups) * int(np.prod(kernel))
    return self.add(y, b * 2.0 * fan, "conv_transpose" if transpose else "conv")
