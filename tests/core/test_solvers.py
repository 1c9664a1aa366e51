"""Solvers: measured orders, convergence to a reference, and stability guards."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.cells import LTCCell
from torchlnn.solvers import RK4, Adaptive, Euler, Fused, get_solver
from torchlnn.wirings import AutoNCP

# dv/dt = v (1 - v), written as (numerator - denominator * v) / C_m with numerator =
# denominator = v and C_m = 1. Exact solution: v(t) = 1 / (1 + (1 / v0 - 1) exp(-t)).
V0 = torch.tensor([[0.1, 0.5, 0.9]], dtype=torch.float64)
CM = torch.ones(3, dtype=torch.float64)


def logistic_terms(v):
    return v, v


def logistic_exact(t: float) -> torch.Tensor:
    return 1.0 / (1.0 + (1.0 / V0 - 1.0) * math.exp(-t))


def measured_order(solver, steps=(8, 16, 32, 64)) -> float:
    errors = []
    for n in steps:
        v = solver.integrate(logistic_terms, CM, V0, 2.0, n)
        errors.append(float((v - logistic_exact(2.0)).abs().max()))
    slope, _ = np.polyfit(np.log([2.0 / n for n in steps]), np.log(errors), 1)
    return slope


@pytest.mark.parametrize("solver, order", [(Euler(), 1), (RK4(), 4), (Fused(epsilon=0.0), 1)])
def test_measured_order_matches_declared_order(solver, order):
    assert solver.order == order
    assert measured_order(solver) == pytest.approx(order, abs=0.15)


def test_adaptive_solver_meets_tolerance_on_known_solution():
    v = Adaptive(rtol=1e-10, atol=1e-12).integrate(logistic_terms, CM, V0, 2.0, 1)
    torch.testing.assert_close(v, logistic_exact(2.0), rtol=0, atol=1e-9)


def test_adaptive_solver_handles_per_sample_elapsed_time():
    dt = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    v0 = torch.full((3, 3), 0.5, dtype=torch.float64)
    v = Adaptive(rtol=1e-10, atol=1e-12).integrate(logistic_terms, CM, v0, dt, 1)
    expected = 1.0 / (1.0 + torch.exp(-dt)).expand(3, 3)
    torch.testing.assert_close(v, expected, rtol=0, atol=1e-9)


def test_fused_ltc_converges_to_fine_reference_as_unfolds_grow():
    torch.manual_seed(0)
    cell = LTCCell(AutoNCP(12, 3), in_features=4, epsilon=0.0).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    h0 = torch.randn(6, 12, dtype=torch.float64)
    dt = 2.0
    cell.solver = Adaptive(rtol=1e-11, atol=1e-13)
    with torch.no_grad():
        _, reference = cell(x, h0, dt)

    cell.solver = get_solver("fused", epsilon=0.0)
    errors = []
    for unfolds in (1, 4, 16, 64, 256, 1024):
        cell.ode_unfolds = unfolds
        with torch.no_grad():
            _, h = cell(x, h0, dt)
        errors.append(float((h - reference).abs().max()))
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 2e-3
    # First order: 4x more sub-steps cut the error about 4x.
    assert errors[-2] / errors[-1] == pytest.approx(4.0, rel=0.25)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
@pytest.mark.parametrize("gap", [1e-4, 1.0, 10.0, 100.0])
def test_explicit_solver_never_returns_nan_silently(solver, gap):
    torch.manual_seed(0)
    model = torchlnn.LTC(8, 32, solver=solver)
    x = 10 * torch.randn(4, 100, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output, h_n = model(x, timespans=gap)
        except FloatingPointError as error:
            assert "solver='fused'" in str(error)
            assert any("likely unstable" in str(w.message) for w in caught)
            return
    assert torch.isfinite(output).all() and torch.isfinite(h_n).all()


def test_explicit_solver_raises_on_divergence():
    torch.manual_seed(0)
    model = torchlnn.LTC(8, 32, solver="euler")
    with pytest.warns(RuntimeWarning, match="'euler' solver is likely unstable"):
        with pytest.raises(FloatingPointError, match="increase ode_unfolds"):
            model(10 * torch.randn(4, 100, 8), timespans=100.0)


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_explicit_solver_small_steps_do_not_warn(solver):
    model = torchlnn.LTC(8, 32, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        output, _ = model(torch.randn(4, 5, 8), timespans=1e-4)
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("gap", [1e-4, 1.0, 10.0, 100.0])
def test_default_solver_finite_for_extreme_inputs_and_gaps(gap):
    torch.manual_seed(0)
    model = torchlnn.LTC(8, 32)
    x = 10 * torch.randn(4, 100, 8)
    output, h_n = model(x, timespans=gap)
    assert torch.isfinite(output).all() and torch.isfinite(h_n).all()


def test_default_solver_trains_without_nan():
    torch.manual_seed(0)
    model = torchlnn.LTC(8, 32)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, target = 10 * torch.randn(4, 20, 8), torch.randn(4, 20, 32)
    for _ in range(50):
        optimiser.zero_grad()
        loss = (model(x, timespans=1.0)[0] - target).pow(2).mean()
        loss.backward()
        optimiser.step()
        assert torch.isfinite(loss)


@pytest.mark.parametrize(
    "solver, unfolds, outcome",
    [("euler", 6, "raises"), ("euler", 48, "finite"), ("rk4", 6, "raises"), ("rk4", 24, "finite")],
)
def test_explicit_training_raises_or_stays_finite(solver, unfolds, outcome):
    # Training with an explicit solver either stops with the solver's error (too few
    # sub-steps) or keeps the loss and every gradient finite, so it never trains on NaN.
    torch.manual_seed(0)
    model = torchlnn.LTC(8, 32, solver=solver, ode_unfolds=unfolds)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, target = torch.randn(4, 10, 8), torch.randn(4, 10, 32)
    for _ in range(25):
        optimiser.zero_grad()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                loss = (model(x, timespans=1.0)[0] - target).pow(2).mean()
            except FloatingPointError:
                assert outcome == "raises"
                assert any("likely unstable" in str(w.message) for w in caught)
                return
        loss.backward()
        assert torch.isfinite(loss)
        for name, parameter in model.named_parameters():
            assert torch.isfinite(parameter.grad).all(), name
        optimiser.step()
    assert outcome == "finite"


def test_get_solver_accepts_instances_and_rejects_unknown_names():
    solver = RK4()
    assert get_solver(solver) is solver
    with pytest.raises(ValueError, match="adaptive"):
        get_solver("dopri8")
