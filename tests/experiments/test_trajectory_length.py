"""The trajectory-length script: its measure, its solver use, and a tiny sweep."""

from __future__ import annotations

import json
import math

import pytest
import torch

from torchlnn.solvers import Adaptive

from .scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("trajectory_length")


def test_circle_has_length_two_pi(script):
    circle, dt = script.circle_input(400)
    # The polygon through 400 points, starting one step after t = 0.
    assert float(script.trajectory_length(circle)) == pytest.approx(2 * math.pi, rel=1e-2)
    assert dt == pytest.approx(2 * math.pi / 400)


def test_ctrnn_layer_matches_closed_form(script):
    # With W = 0 the CT-RNN is dh/dt = -h + tanh(b): h(t) = tanh(b) (1 - exp(-t)).
    layer = script.RandomLayer("ctrnn", 2, 3, 1, 1.0, 1.0, "tanh", torch.Generator().manual_seed(0))
    layer.w_h.zero_()
    layer.w_x.zero_()
    circle, dt = script.circle_input(20)
    states = layer.run(circle[None], dt, Adaptive(rtol=1e-9, atol=1e-11))  # (1, T, 3)
    times = dt * torch.arange(1, 21, dtype=torch.float64)
    expected = torch.tanh(layer.b[0]) * (1 - torch.exp(-times))[:, None]
    assert torch.allclose(states[0], expected, atol=1e-7)


def test_zero_drive_keeps_node_and_ltc_at_rest(script):
    for model in ("node", "ltc"):
        layer = script.RandomLayer(model, 2, 3, 2, 0.0, 0.0, "tanh", torch.Generator())
        circle, dt = script.circle_input(10)
        states = layer.run(circle.expand(2, -1, -1), dt, Adaptive())
        assert float(states.abs().max()) == 0.0


def test_tiny_sweep_writes_results(script, tmp_path, no_network):
    arguments = ["--widths", "4", "--depths", "2", "--seeds", "2", "--steps", "12"]
    arguments += ["--sigma-w", "2", "--out", str(tmp_path), "--no-progress"]
    assert script.main(arguments) == 0
    record = json.loads((tmp_path / "trajectory_length.json").read_text())
    for model in ("ltc", "ctrnn", "node"):
        layers = record["results"][f"{model}/w4/s2"]["layers"]
        assert len(layers) == 2
        for layer in layers:
            assert math.isfinite(layer["length"])
            assert layer["length"] > 0
            assert layer["pca_length"] <= layer["length"] + 1e-9
    assert (tmp_path / "trajectory_length.png").stat().st_size > 1000
    assert "| 2 | 4 |" in (tmp_path / "trajectory_length.section.md").read_text()
