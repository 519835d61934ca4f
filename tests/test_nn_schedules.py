"""nn schedules: 100 rates of each equal torch.optim.lr_scheduler's."""
from __future__ import annotations

import numpy as np
import pytest

import symdiff.nn as nn

CASES = [
    ("StepLR", dict(step_size=7, gamma=0.5), lambda: nn.StepLR(0.1, 7, 0.5)),
    ("MultiStepLR", dict(milestones=[10, 30, 31], gamma=0.3), lambda: nn.MultiStepLR(0.1, [10, 30, 31], 0.3)),
    ("ExponentialLR", dict(gamma=0.97), lambda: nn.ExponentialLR(0.1, 0.97)),
    ("CosineAnnealingLR", dict(T_max=100, eta_min=1e-3), lambda: nn.CosineAnnealingLR(0.1, 100, 1e-3)),
    ("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=20), lambda: nn.LinearLR(0.1, 0.1, 1.0, 20)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=101), lambda: nn.OneCycleLR(0.5, 101)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=101, three_phase=True, anneal_strategy="linear"),
     lambda: nn.OneCycleLR(0.5, 101, three_phase=True, anneal_strategy="linear")),
]


def _torch_rates(name, kw, n=100):
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    if name == "SequentialLR":
        s1 = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10)
        s2 = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [s1, s2], milestones=[10])
    else:
        sched = getattr(torch.optim.lr_scheduler, name)(opt, **kw)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("name,kw,ours", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rates_equal_pytorch(name, kw, ours):
    np.testing.assert_allclose(ours().rates(100), _torch_rates(name, kw), rtol=1e-9, atol=1e-12)


def test_sequential_warmup_then_decay_equals_pytorch():
    ours = nn.SequentialLR([nn.LinearLR(0.1, 0.1, 1.0, 10), nn.ExponentialLR(0.1, 0.95)], [10])
    np.testing.assert_allclose(ours.rates(100), _torch_rates("SequentialLR", {}), rtol=1e-9, atol=1e-12)


def test_trainer_records_the_schedule_per_epoch():
    r = np.random.default_rng(0)
    X, y = r.standard_normal((32, 3)).astype(np.float32), r.integers(0, 2, 32)
    t = nn.Trainer(nn.Linear(3, 2, name="lin"), input_shape=(3,), batch_size=8, lr=nn.StepLR(0.1, 2, 0.5),
                   progress=False, compile_options={"backend": "numpy"})
    h = t.fit(X, y, epochs=5)
    assert h.lr == [0.1, 0.1, 0.05, 0.05, 0.025]
