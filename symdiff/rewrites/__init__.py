"""The simplifier's rewrites: named functions registered by phase and op (see :mod:`.registry`).

Importing this package registers every rewrite, in a fixed order: constant folding and the algebraic
identities (:mod:`.algebra`), identities of where (:mod:`.select`), layout identities (:mod:`.shapes`), stable forms (:mod:`.stabilize`),
cheaper forms (:mod:`.specialize`).
"""
from . import algebra, select, shapes, specialize, stabilize  # noqa: F401  (registration)
from . import index  # noqa: F401  (registration: slice, flip, embed, concatenate)
from .algebra import FOLD_LIMIT
from .patterns import fill, like, one_plus, uniform
from .registry import PHASE_NAMES, REWRITES, Rewrite, dispatch, in_phase, rewrite, rewrites_for

__all__ = ["FOLD_LIMIT", "PHASE_NAMES", "REWRITES", "Rewrite", "dispatch", "fill", "in_phase", "like", "one_plus",
           "rewrite", "rewrites_for", "uniform"]
