"""torch.export: one program for every batch size and sequence length."""

from __future__ import annotations

import pytest
import torch

from torchlnn.export import to_exported_program

from .helpers import INPUT_SIZE, PROGRAM_ONLY, build, reference, sequence_inputs

# torch.export decomposes operators (addmm, softplus), which can change float32 rounding.
TOLERANCE = 1e-5


@pytest.mark.parametrize("name", PROGRAM_ONLY)
def test_exported_sequence_matches_eager_at_other_lengths(name):
    model = build(name)
    program = to_exported_program(model)  # exported at 3 steps and batch 2
    module = program.module()
    for batch, steps in ((1, 1), (3, 11), (2, 30)):
        x, state, timespans = sequence_inputs(model, batch, steps, seed=steps)
        expected, expected_state = reference(model, x, state, timespans)
        output, final_state = module(x, state, timespans)
        assert output.shape == expected.shape
        torch.testing.assert_close(output, expected, rtol=0, atol=TOLERANCE)
        torch.testing.assert_close(final_state, expected_state, rtol=0, atol=TOLERANCE)


def test_exported_sequence_keeps_scan_node():
    program = to_exported_program(build("ltc-fused-ncp"))
    targets = [node.target for node in program.graph.nodes if node.op == "call_function"]
    assert torch.ops.higher_order.scan in targets


@pytest.mark.parametrize("name", ["ltc-fused-ncp", "cfc-wired-no_gate-mixed"])
def test_exported_step_loop_matches_eager(name):
    model = build(name)
    step = to_exported_program(model, form="step").module()
    x, state, timespans = sequence_inputs(model, batch=4, steps=20)
    expected, expected_state = reference(model, x, state, timespans)

    outputs = []
    for t in range(20):
        output, state = step(x[:, t], state, timespans[:, t])
        outputs.append(output)
    torch.testing.assert_close(torch.stack(outputs, 1), expected, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(state, expected_state, rtol=0, atol=TOLERANCE)


def test_exported_program_save_and_load(tmp_path):
    model = build("cfc-wired-pure-proj")
    path = tmp_path / "policy.pt2"
    to_exported_program(model, path)
    loaded = torch.export.load(str(path)).module()
    x, state, timespans = sequence_inputs(model, batch=2, steps=13)
    expected, _ = reference(model, x, state, timespans)
    torch.testing.assert_close(loaded(x, state, timespans)[0], expected, rtol=0, atol=TOLERANCE)


def test_exported_wrong_state_shape_raises():
    module = to_exported_program(build("ltc-euler-time-major-last"), form="step").module()
    with pytest.raises(AssertionError, match="state"):
        module(torch.zeros(2, INPUT_SIZE), torch.zeros(2, 8), torch.ones(2, 1))
