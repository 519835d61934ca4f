"""Learning-rate schedules with PyTorch's rates (``torch.optim.lr_scheduler``), as callables ``step -> lr``.

A schedule feeds the scalar graph input ``lr`` of a compiled step (``nn.sgd(loss, params, lr_input)``,
``Trainer(lr=schedule)``), so changing the rate never recompiles. ``schedule(t)`` is the rate after ``t``
calls of PyTorch's ``scheduler.step()`` (``t = 0``: the initial rate); ``schedule.rates(n)`` the first
``n``. The Trainer calls it once per epoch (``t`` = the epoch) and records the rate in ``History.lr``;
a per-batch schedule (one-cycle) is fed per step by calling ``trainer.step(x, y, lr=schedule(t))``.

- ``StepLR(lr, step_size, gamma=0.1)``: ``lr * gamma^(t // step_size)``
- ``MultiStepLR(lr, milestones, gamma=0.1)``: ``lr * gamma^(number of milestones <= t)``
- ``ExponentialLR(lr, gamma)``: ``lr * gamma^t``
- ``CosineAnnealingLR(lr, T_max, eta_min=0)``: ``eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2``
  (PyTorch's recursive form agrees with this closed form; it also continues past ``T_max``, periodically)
- ``LinearLR(lr, start_factor=1/3, end_factor=1, total_iters=5)``: the factor moves linearly from
  ``start_factor`` to ``end_factor`` over ``total_iters`` steps (a linear warm-up)
- ``OneCycleLR(max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", div_factor=25,
  final_div_factor=1e4, three_phase=False)``: from ``max_lr / div_factor`` up to ``max_lr`` over
  ``pct_start * total_steps - 1`` steps, then down to ``initial / final_div_factor`` (PyTorch's phases)
- ``SequentialLR(schedules, milestones)``: schedule ``k`` from milestone ``k - 1`` on, restarted at its
  own step 0 there.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

__all__ = ["Schedule", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR",
           "SequentialLR"]


class Schedule:
    """Base class: ``self(t)`` is the rate after ``t`` scheduler steps."""

    def __call__(self, t: int) -> float:
        if t < 0:
            raise ValueError(f"{type(self).__name__}: step must be >= 0, got {t}")
        return float(self.rate(int(t)))

    def rate(self, t: int) -> float:
        raise NotImplementedError

    def rates(self, n: int) -> list[float]:
        return [self(t) for t in range(n)]


class StepLR(Schedule):
    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def rate(self, t: int) -> float:
        return self.lr * self.gamma ** (t // self.step_size)


class MultiStepLR(Schedule):
    def __init__(self, lr: float, milestones: Sequence[int], gamma: float = 0.1) -> None:
        self.lr, self.milestones, self.gamma = float(lr), sorted(int(m) for m in milestones), float(gamma)

    def rate(self, t: int) -> float:
        return self.lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(Schedule):
    def __init__(self, lr: float, gamma: float) -> None:
        self.lr, self.gamma = float(lr), float(gamma)

    def rate(self, t: int) -> float:
        return self.lr * self.gamma ** t


class CosineAnnealingLR(Schedule):
    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 - PyTorch's name
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.lr, self.T_max, self.eta_min = float(lr), int(T_max), float(eta_min)

    def rate(self, t: int) -> float:
        return self.eta_min + (self.lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearLR(Schedule):
    def __init__(self, lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5) -> None:
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.lr, self.start, self.end, self.total = float(lr), float(start_factor), float(end_factor), int(total_iters)

    def rate(self, t: int) -> float:
        return self.lr * (self.start + (self.end - self.start) * min(t, self.total) / self.total)


class OneCycleLR(Schedule):
    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if total_steps < 1 or not 0 <= pct_start <= 1:
            raise ValueError("OneCycleLR: total_steps must be >= 1 and pct_start in [0, 1]")
        initial = max_lr / div_factor
        low = initial / final_div_factor
        T = int(total_steps)
        if three_phase:
            self.phases = [(float(pct_start * T) - 1, initial, max_lr), (float(2 * pct_start * T) - 2, max_lr, initial),
                           (T - 1.0, initial, low)]
        else:
            self.phases = [(float(pct_start * T) - 1, initial, max_lr), (T - 1.0, max_lr, low)]
        self.cos, self.total = anneal_strategy == "cos", T

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.cos:
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def rate(self, t: int) -> float:
        if t >= self.total:
            raise ValueError(f"OneCycleLR: step {t} is past total_steps={self.total} (as PyTorch raises)")
        begin = 0.0
        for i, (end_step, lo, hi) in enumerate(self.phases):
            if t <= end_step or i == len(self.phases) - 1:
                pct = (t - begin) / (end_step - begin)
                return self._anneal(lo, hi, pct)
            begin = end_step
        raise AssertionError("unreachable")


class SequentialLR(Schedule):
    def __init__(self, schedules: Sequence[Schedule], milestones: Sequence[int]) -> None:
        if len(milestones) != len(schedules) - 1:
            raise ValueError(f"SequentialLR: {len(schedules)} schedules need {len(schedules) - 1} milestones, "
                             f"got {len(milestones)}")
        self.schedules, self.milestones = list(schedules), [int(m) for m in milestones]

    def rate(self, t: int) -> float:
        k = bisect.bisect_right(self.milestones, t)
        start = self.milestones[k - 1] if k else 0
        return self.schedules[k](t - start)
