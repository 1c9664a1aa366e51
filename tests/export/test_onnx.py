"""ONNX: exported once, run by ONNX Runtime at other sequence lengths and batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlnn.export import to_onnx

from .helpers import INPUT_SIZE, ONNX_SEQUENCE, build, reference, sequence_inputs

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def axis_names(value_info) -> list:
    return [dim.dim_param or dim.dim_value for dim in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", ONNX_SEQUENCE)
def test_onnx_sequence_matches_torch_at_other_lengths(name, tmp_path):
    model = build(name)
    path = to_onnx(model, tmp_path / "model.onnx")  # exported at 3 steps and batch 2
    runtime = session(path)
    for batch, steps in ((1, 7), (3, 50)):
        x, state, timespans = sequence_inputs(model, batch, steps, seed=steps)
        expected, expected_state = reference(model, x, state, timespans)
        output, final_state = runtime.run(
            None, {"x": x.numpy(), "state": state.numpy(), "timespans": timespans.numpy()}
        )
        assert output.shape == tuple(expected.shape)
        np.testing.assert_allclose(output, expected.numpy(), rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(final_state, expected_state.numpy(), rtol=0, atol=TOLERANCE)


def test_onnx_sequence_has_scan_and_symbolic_axes(tmp_path):
    model = build("cfc-ncps-default-time-major")
    path = to_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)

    assert "Scan" in [node.op_type for node in graph.node]
    inputs = {value.name: axis_names(value) for value in graph.input}
    outputs = {value.name: axis_names(value) for value in graph.output}
    assert inputs == {
        "x": ["steps", "batch", INPUT_SIZE],
        "state": ["batch", 9],
        "timespans": ["steps", "batch", 1],
    }
    assert outputs == {"output": ["steps", "batch", 2], "final_state": ["batch", 9]}
    assert not list(tmp_path.glob("*.data"))  # the weights are inside the .onnx file


@pytest.mark.parametrize("name", ["ltc-rk4-mixed", "cfc-default-proj"])
def test_onnx_step_loop_matches_torch(name, tmp_path):
    model = build(name)
    runtime = session(to_onnx(model, tmp_path / "step.onnx", form="step"))
    x, state, timespans = sequence_inputs(model, batch=4, steps=30)
    expected, expected_state = reference(model, x, state, timespans)

    state_np, outputs = state.numpy(), []
    for t in range(30):
        feeds = {"x": x[:, t].numpy(), "state": state_np, "dt": timespans[:, t].numpy()}
        output, state_np = runtime.run(None, feeds)
        outputs.append(output)
    np.testing.assert_allclose(np.stack(outputs, 1), expected.numpy(), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(state_np, expected_state.numpy(), rtol=0, atol=TOLERANCE)


def test_onnx_sequence_with_encoder(tmp_path):
    from .test_streaming import FrameEncoder

    model, encoder = build("cfc-wired-default"), FrameEncoder().eval()
    path = to_onnx(model, tmp_path / "policy.onnx", encoder=encoder, observation_shape=(1, 8, 8))
    frames, timespans = torch.randn(2, 11, 1, 8, 8), torch.rand(2, 11, 1)
    with torch.no_grad():
        encoded = encoder(frames.flatten(0, 1)).unflatten(0, (2, 11))  # (B, T, I)
        expected, _ = model(encoded, timespans=timespans)
    feeds = {"x": frames.numpy(), "state": np.zeros((2, 9), np.float32)}
    output, _ = session(path).run(None, {**feeds, "timespans": timespans.numpy()})
    np.testing.assert_allclose(output, expected.numpy(), rtol=0, atol=TOLERANCE)


def test_onnx_runtime_rejects_wrong_state_shape(tmp_path):
    model = build("ltc-fused-ncp")
    runtime = session(to_onnx(model, tmp_path / "step.onnx", form="step"))
    feeds = {
        "x": np.zeros((2, INPUT_SIZE), np.float32),
        "state": np.zeros((2, 8), np.float32),
        "dt": np.ones((2, 1), np.float32),
    }
    with pytest.raises(Exception, match=r"(?s)state.*Got: 8 Expected: 9"):
        runtime.run(None, feeds)


def test_onnx_unwritable_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        to_onnx(build("ltc-fused-ncp"), tmp_path / "missing" / "model.onnx")


def test_onnx_adaptive_solver_rejected(tmp_path):
    import torchlnn

    with pytest.raises(ValueError, match="'adaptive' cannot be exported"):
        to_onnx(torchlnn.LTC(INPUT_SIZE, 4, solver="adaptive"), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_onnx_export_keeps_torch_outputs_unchanged(tmp_path):
    # Exporting copies the model: the original still runs in training mode with gradients.
    model = build("cfc-default-proj").train()
    to_onnx(model, tmp_path / "model.onnx", form="step")
    assert model.training
    assert all(parameter.requires_grad for parameter in model.parameters())
    output, _ = model(torch.randn(2, 3, INPUT_SIZE))
    assert output.requires_grad
