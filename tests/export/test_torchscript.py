"""TorchScript: traced at one length, correct at every other length."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import torchlnn
from torchlnn.export import to_torchscript

from .helpers import INPUT_SIZE, LAYERS, build, reference, sequence_inputs
from .test_streaming import FrameEncoder

# The traced step runs the same operations as the layer; matrix products may sum in another
# order (see test_streaming), and errors of 1e-7 grow over an RK4 step with mixed memory.
TOLERANCE = 1e-5


def load_scripted(path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        return torch.jit.load(str(path))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_scripted_sequence_matches_eager_at_other_lengths(name):
    model = build(name)
    scripted = to_torchscript(model)  # traced at 3 steps and batch 2
    for batch, steps in ((1, 1), (4, 17), (2, 40)):
        x, state, timespans = sequence_inputs(model, batch, steps, seed=steps)
        expected, expected_state = reference(model, x, state, timespans)
        output, final_state = scripted(x, state, timespans)
        assert output.shape == expected.shape
        torch.testing.assert_close(output, expected, rtol=0, atol=TOLERANCE)
        torch.testing.assert_close(final_state, expected_state, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", ["ltc-rk4-mixed", "cfc-wired-no_gate-mixed", "cfc-default-proj"])
def test_scripted_step_loop_matches_eager(name):
    model = build(name)
    scripted = to_torchscript(model, form="step")
    x, state, timespans = sequence_inputs(model, batch=3, steps=25)
    expected, expected_state = reference(model, x, state, timespans)

    outputs = []
    for t in range(25):
        output, state = scripted(x[:, t], state, timespans[:, t])
        outputs.append(output)
    torch.testing.assert_close(torch.stack(outputs, 1), expected, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(state, expected_state, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("cell_name", ["ltc", "cfc", "wired"])
def test_scripted_cell_matches_cell_forward(cell_name):
    cells = {
        "ltc": lambda: torchlnn.LTCCell(torchlnn.wirings.FullyConnected(4), INPUT_SIZE),
        "cfc": lambda: torchlnn.CfCCell(INPUT_SIZE, 6, backbone_units=8),
        "wired": lambda: torchlnn.WiredCfCCell(INPUT_SIZE, torchlnn.wirings.AutoNCP(8, 2)),
    }
    cell = cells[cell_name]().eval()
    scripted = to_torchscript(cell, form="step")
    x, h, dt = torch.randn(3, INPUT_SIZE), torch.randn(3, cell.state_size), torch.rand(3, 1)
    with torch.no_grad():
        expected_output, expected_h = cell(x, h, dt)
    output, new_h = scripted(x, h, dt)
    torch.testing.assert_close(output, expected_output, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(new_h, expected_h, rtol=0, atol=TOLERANCE)


def test_scripted_save_and_load(tmp_path):
    model = build("ltc-fused-ncp")
    path = tmp_path / "policy.pt"
    to_torchscript(model, path)
    loaded = load_scripted(path)
    x, state, timespans = sequence_inputs(model, batch=2, steps=9)
    expected, _ = reference(model, x, state, timespans)
    torch.testing.assert_close(loaded(x, state, timespans)[0], expected, rtol=0, atol=TOLERANCE)


def test_scripted_with_encoder():
    model = build("cfc-wired-default")
    encoder = FrameEncoder().eval()
    scripted = to_torchscript(model, encoder=encoder, observation_shape=(1, 8, 8))
    frames = torch.randn(2, 11, 1, 8, 8)
    timespans = torch.rand(2, 11, 1)
    with torch.no_grad():
        encoded = encoder(frames.flatten(0, 1)).unflatten(0, (2, 11))
        expected, _ = model(encoded, timespans=timespans)
    output, _ = scripted(frames, torch.zeros(2, 9), timespans)
    torch.testing.assert_close(output, expected, rtol=0, atol=TOLERANCE)


def test_scripted_leaves_model_unchanged():
    model = build("cfc-no_gate-2layers").train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    to_torchscript(model)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_scripted_wrong_state_shape_raises():
    model = build("ltc-rk4-mixed")
    scripted = to_torchscript(model)
    x, _, timespans = sequence_inputs(model, batch=2, steps=4)
    with pytest.raises(torch.jit.Error, match=r"state must have shape \[2, 12\].*got \[2, 6\]"):
        scripted(x, torch.zeros(2, 6), timespans)


def test_scripted_step_wrong_dt_shape_raises():
    scripted = to_torchscript(build("ltc-euler-time-major-last"), form="step")
    with pytest.raises(torch.jit.Error, match=r"dt must have shape \[2, 1\]"):
        scripted(torch.zeros(2, INPUT_SIZE), torch.zeros(2, 9), torch.zeros(2))


def test_adaptive_solver_rejected_with_reason():
    model = torchlnn.LTC(INPUT_SIZE, 4, solver="adaptive")
    with pytest.raises(ValueError, match=r"'adaptive' cannot be exported.*depends on the state"):
        to_torchscript(model)


def test_wrong_form_and_observation_shape_raise():
    model = build("ltc-euler-time-major-last")
    with pytest.raises(ValueError, match="form must be 'step'"):
        to_torchscript(model, form="loop")
    with pytest.raises(ValueError, match=r"must be \(5,\), got \(4,\)"):
        to_torchscript(model, observation_shape=(4,))
    with pytest.raises(ValueError, match="observation_shape"):
        to_torchscript(model, encoder=nn.Identity())


def test_unwritable_path_raises(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        to_torchscript(build("ltc-euler-time-major-last"), blocker / "policy.pt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        to_torchscript(build("ltc-euler-time-major-last"), tmp_path)
