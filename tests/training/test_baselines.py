from __future__ import annotations

import pytest
import torch

from torchlnn.baselines import CTRNN


def reference_solution(model: CTRNN, x: torch.Tensor, dt: torch.Tensor, substeps: int):
    """Integrate dh/dt = -h/tau + tanh(W [x; h] + b) with many explicit Euler steps."""
    batch, steps, _ = x.shape
    h = torch.zeros(batch, model.units, dtype=x.dtype)
    tau = model.tau
    outputs = []
    for t in range(steps):
        step = dt[:, t : t + 1] / substeps  # (B, 1)
        for _ in range(substeps):
            drive = torch.tanh(model.linear(torch.cat([x[:, t], h], dim=-1)))
            h = h + step * (-h / tau + drive)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def test_shapes():
    model = CTRNN(3, 5)
    output, h_n = model(torch.randn(2, 7, 3))
    assert output.shape == (2, 7, 5)
    assert h_n.shape == (2, 5)
    assert torch.equal(output[:, -1], h_n)


def test_converges_to_the_ode_solution():
    torch.manual_seed(1)
    model = CTRNN(2, 4, ode_unfolds=400, tau=0.7).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    dt = torch.rand(3, 5, dtype=torch.float64) + 0.5
    output, _ = model(x, timespans=dt)
    reference = reference_solution(model, x, dt, substeps=4000)
    assert torch.allclose(output, reference, atol=2e-4)


def test_per_sample_timespans_match_single_runs():
    torch.manual_seed(2)
    model = CTRNN(2, 3)
    x = torch.randn(3, 6, 2)  # batch size equal to units on purpose
    dt = torch.rand(3, 6) * 2
    output, _ = model(x, timespans=dt)
    for i in range(3):
        single, _ = model(x[i : i + 1], timespans=dt[i : i + 1])
        assert torch.allclose(output[i], single[0], atol=1e-6)


def test_masked_steps_keep_the_state():
    model = CTRNN(2, 3)
    x = torch.randn(2, 5, 2)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    output, h_n = model(x, mask=mask)
    short, short_h = model(x[1:, :2])
    assert torch.allclose(h_n[1], short_h[0], atol=1e-6)
    assert torch.count_nonzero(output[1, 2:]) == 0


def test_state_stays_bounded_for_long_steps():
    model = CTRNN(1, 4, ode_unfolds=1, tau=2.0)
    output, _ = model(torch.randn(1, 20, 1) * 10, timespans=100.0)
    assert bool((output.abs() <= model.tau + 1e-5).all())


@pytest.mark.parametrize("kwargs", [{"units": 0}, {"ode_unfolds": 0}, {"tau": 0.0}])
def test_invalid_arguments_raise(kwargs):
    arguments = {"input_size": 2, "units": 3, **kwargs}
    with pytest.raises(ValueError, match="CTRNN"):
        CTRNN(**arguments)
