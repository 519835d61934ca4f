"""Op-suite cases for indexing, slicing, shape and joining ops (merged into tests/test_ops.py CASES / API_CASES)."""
from __future__ import annotations

import numpy as np

import symdiff as sd
from symdiff.ir import apply

from test_ops import Case


def _x(shape):
    return lambda r: {"x": r.standard_normal(shape)}


def _xy(sx, sy):
    return lambda r: {"x": r.standard_normal(sx), "y": r.standard_normal(sy)}


def _embed_ref(x):
    out = np.full((5, 7), 1.5)
    out[1::2, 2:6] = x
    return out


CASES: dict = {  # op name -> Case
    "slice": Case(_x((4, 5)), lambda x: apply("slice", [sd.exp(x)], start=(1, 0), step=(2, 2), shape=(2, 3)),
                  lambda x: np.exp(x)[1::2, ::2]),
    "flip": Case(_x((2, 3, 4)), lambda x: apply("flip", [x * x], axes=(0, 2)), lambda x: (x * x)[::-1, :, ::-1]),
    "embed": Case(_x((2, 4)), lambda x: apply("embed", [sd.sin(x)], shape=(5, 7), start=(1, 2), step=(2, 1), fill=1.5),
                  lambda x: _embed_ref(np.sin(x))),
    "concatenate": Case(_xy((2, 3), (2, 2)), lambda x, y: apply("concatenate", [x, sd.exp(y), x * y[:, :1]], axis=1),
                        lambda x, y: np.concatenate([x, np.exp(y), x * y[:, :1]], axis=1)),
}

API_CASES: dict = {  # DSL function name -> Case (functions built from other ops)
    "getitem": Case(_x((3, 4, 2)), lambda x: x[::-1, None, 1:4:2, -1] * x[0, ..., 1:],
                    lambda x: x[::-1, None, 1:4:2, -1] * x[0, ..., 1:]),
    "stack": Case(_xy((2, 3), (2, 3)), lambda x, y: sd.stack([x, y * y], axis=1), lambda x, y: np.stack([x, y * y], 1)),
    "split": Case(_x((3, 4)), lambda x: sd.split(x, [1, 3], axis=1)[1] * sd.array_split(x, 2, axis=1)[0],
                  lambda x: np.split(x, [1, 3], 1)[1] * np.array_split(x, 2, 1)[0]),
    "pad": Case(_x((2, 3)), lambda x: sd.pad(x, ((1, 2), (2, 1)), "reflect") + sd.pad(x, ((2, 1), (1, 2)), "edge"),
                lambda x: np.pad(x, ((1, 2), (2, 1)), "reflect") + np.pad(x, ((2, 1), (1, 2)), "edge")),
    "roll": Case(_x((3, 4)), lambda x: sd.roll(x, (1, -1), (0, 1)), lambda x: np.roll(x, (1, -1), (0, 1))),
    "repeat": Case(_x((2, 3)), lambda x: sd.repeat(x, 2, axis=1)[:, :4] * sd.repeat(x, [2, 1, 1], axis=1),
                   lambda x: np.repeat(x, 2, axis=1)[:, :4] * np.repeat(x, [2, 1, 1], axis=1)),
    "tile": Case(_x((2, 3)), lambda x: sd.tile(x, (2, 1)), lambda x: np.tile(x, (2, 1))),
    "diagonal": Case(_x((3, 4)), lambda x: sd.diagonal(x, 1) * sd.trace(x * x), lambda x: np.diagonal(x, 1) * np.trace(x * x)),
    "triu": Case(_x((3, 4)), lambda x: sd.triu(x, 1) + sd.tril(x * x), lambda x: np.triu(x, 1) + np.tril(x * x)),
    "diff": Case(_x((2, 5)), lambda x: sd.diff(x * x, n=2), lambda x: np.diff(x * x, n=2)),
    "cross": Case(_xy((2, 3), (3,)), lambda x, y: sd.cross(x, y), lambda x, y: np.cross(x, y)),
    "rot90": Case(_x((2, 3)), lambda x: sd.rot90(x * x) + sd.rot90(x, 3), lambda x: np.rot90(x * x) + np.rot90(x, 3)),
    "moveaxis": Case(_x((2, 3, 2)), lambda x: sd.moveaxis(x, 0, -1) * sd.squeeze(sd.expand_dims(x, 0)).swapaxes(0, 1),
                     lambda x: np.moveaxis(x, 0, -1) * x.swapaxes(0, 1)),
    "concatenate": Case(_xy((2, 3), (1, 3)), lambda x, y: sd.vstack([x, y, 2.0 * y]) + sd.concatenate([y, x, y], 0),
                        lambda x, y: np.vstack([x, y, 2.0 * y]) + np.concatenate([y, x, y], 0)),
}
