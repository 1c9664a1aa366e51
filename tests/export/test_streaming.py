"""StreamingController and StepModule: one observation at a time equals the whole sequence."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import torchlnn
from torchlnn.export import StepModule, StepProtocol, StreamingController

from .helpers import INPUT_SIZE, LAYERS, build, reference, sequence_inputs

# Layers whose input terms go through a matrix product: PyTorch's kernels sum a (B*K, I) block
# in another order than a (B, I) row, so streaming agrees to float32 rounding, not bit for bit.
ROUNDING = 1e-6


def stream(controller: StreamingController, x: Tensor, timespans: Tensor) -> Tensor:
    """Feed a batch-first sequence step by step and return the outputs (B, T, O)."""
    outputs = [controller.step(x[:, t], timespans[:, t]) for t in range(x.shape[1])]
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_controller_equals_whole_sequence(name):
    model = build(name)
    x, state, timespans = sequence_inputs(model, batch=3, steps=25)
    expected, final_state = reference(model, x, state, timespans)
    if not model.batch_first:
        x, timespans = x.transpose(0, 1), timespans.transpose(0, 1)  # (T, B, ...) -> (B, T, ...)

    controller = StreamingController(model, batch_size=3)
    controller.reset(state)
    outputs = stream(controller, x, timespans)

    if not model.return_sequences:
        outputs = outputs[:, -1]
    elif not model.batch_first:
        outputs = outputs.transpose(0, 1)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=ROUNDING)
    torch.testing.assert_close(controller.state, final_state, rtol=0, atol=ROUNDING)


def test_controller_ltc_bit_identical():
    # Without matrix products, the LTC's step is the same arithmetic as the layer's reference
    # loop. The layer's fast path sums the synapses in another order (rounding, tested above).
    model = build("ltc-fused-ncp")
    model.fast_path = False
    x, _, timespans = sequence_inputs(model, batch=2, steps=50)
    expected, _ = reference(model, x, torch.zeros(2, model.state_size), timespans)
    controller = StreamingController(model, batch_size=2)
    assert torch.equal(stream(controller, x, timespans), expected)


def test_controller_continues_from_layer_state():
    model = build("cfc-wired-no_gate-mixed")
    x, state, timespans = sequence_inputs(model, batch=2, steps=30)
    expected, _ = reference(model, x, state, timespans)

    first_half, h_n = model(x[:, :12], (state[:, :9], state[:, 9:]), timespans[:, :12])
    controller = StreamingController(model, batch_size=2)
    controller.reset(controller.step_module.pack_state(h_n))
    second_half = stream(controller, x[:, 12:], timespans[:, 12:])

    torch.testing.assert_close(second_half, expected[:, 12:], rtol=0, atol=ROUNDING)
    assert first_half.shape == (2, 12, 2)


def test_controller_reset_restarts_episode():
    model = build("ltc-euler-time-major-last")
    controller = StreamingController(model)
    observations = torch.randn(6, INPUT_SIZE)
    first = torch.stack([controller.step(o, dt=0.3) for o in observations])
    controller.reset()
    second = torch.stack([controller.step(o, dt=0.3) for o in observations])
    assert torch.equal(first, second)
    assert first.shape == (6, 2)  # unbatched observations give unbatched outputs


def test_controller_dt_forms_agree():
    model = build("cfc-default-proj")
    observation = torch.randn(2, INPUT_SIZE)
    results = []
    for dt in (0.5, torch.tensor(0.5), torch.full((2,), 0.5), torch.full((2, 1), 0.5)):
        controller = StreamingController(model, batch_size=2)
        results.append(controller.step(observation, dt))
    for result in results[1:]:
        assert torch.equal(result, results[0])


def test_controller_per_sample_dt():
    model = build("ltc-fused-ncp")
    observations = torch.randn(2, INPUT_SIZE)
    dt = torch.tensor([0.2, 1.5])
    together = StreamingController(model, batch_size=2).step(observations, dt)
    for i in range(2):
        alone = StreamingController(model).step(observations[i], float(dt[i]))
        torch.testing.assert_close(together[i], alone, rtol=0, atol=ROUNDING)


class FrameEncoder(nn.Module):
    """A small per-frame convolutional head: (B, 1, 8, 8) -> (B, INPUT_SIZE)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=3, stride=2)
        self.head = nn.Linear(3 * 3 * 3, INPUT_SIZE)

    def forward(self, frames: Tensor) -> Tensor:
        features = torch.relu(self.conv(frames))  # (B, 3, 3, 3)
        return self.head(features.flatten(1))  # (B, INPUT_SIZE)


def test_controller_with_encoder_equals_encoded_sequence():
    model = build("ltc-fused-ncp")
    encoder = FrameEncoder().eval()
    frames = torch.randn(2, 15, 1, 8, 8)
    timespans = torch.rand(2, 15, 1) + 0.1
    with torch.no_grad():
        encoded = encoder(frames.flatten(0, 1)).unflatten(0, (2, 15))  # (B, T, I)
        expected, _ = model(encoded, timespans=timespans)

    controller = StreamingController(model, encoder=encoder, batch_size=2)
    outputs = stream(controller, frames, timespans)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=ROUNDING)


class CountingPolicy(nn.Module):
    """A model of its own that follows StepProtocol: it adds dt to a counter state."""

    state_size = 1

    def initial_state(self, batch_size, device=None, dtype=None):
        return torch.zeros(batch_size, 1, device=device, dtype=dtype)

    def forward(self, x, state, dt):
        state = state + dt
        return x.sum(-1, keepdim=True) + state, state


def test_controller_accepts_step_protocol():
    policy = CountingPolicy()
    assert isinstance(policy, StepProtocol)
    controller = StreamingController(policy)
    controller.step(torch.ones(1, 3), dt=0.25)
    output = controller.step(torch.ones(1, 3), dt=0.5)
    assert output.tolist() == [[3.75]]


def test_step_module_pack_unpack_round_trip():
    step = StepModule(build("ltc-rk4-mixed"))
    h, c = torch.randn(2, 6), torch.randn(2, 6)
    state = step.pack_state((h, c))
    assert state.shape == (2, 12)
    h_back, c_back = step.unpack_state(state)
    assert torch.equal(h_back, h)
    assert torch.equal(c_back, c)


def test_controller_wrong_state_shape_raises():
    controller = StreamingController(build("ltc-rk4-mixed"), batch_size=2)
    with pytest.raises(ValueError, match=r"\(2, 12\).*got \(2, 6\).*h and c"):
        controller.reset(torch.zeros(2, 6))


def test_controller_wrong_observation_shape_raises():
    controller = StreamingController(build("ltc-fused-ncp"), batch_size=2)
    with pytest.raises(ValueError, match=r"\(2, 5\).*got \(2, 4\)"):
        controller.step(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="expected 2 observations"):
        controller.step(torch.zeros(3, INPUT_SIZE))


@pytest.mark.parametrize("dt", [-0.1, float("nan"), torch.tensor([0.1, -1.0])])
def test_controller_invalid_dt_raises(dt):
    controller = StreamingController(build("ltc-fused-ncp"), batch_size=2)
    with pytest.raises(ValueError, match="non-negative"):
        controller.step(torch.zeros(2, INPUT_SIZE), dt)


def test_controller_rejects_non_liquid_model():
    with pytest.raises(TypeError, match="torchlnn layer"):
        StreamingController(nn.LSTM(3, 4))


def test_controller_rejects_encoder_with_protocol_model():
    with pytest.raises(ValueError, match="own step"):
        StreamingController(CountingPolicy(), encoder=nn.Identity())


def test_step_module_explicit_solver_keeps_checks_in_eager():
    # Eagerly, the step uses the cell's own advance, so an unstable Euler step still warns,
    # and its state, far outside the equation's range, raises.
    model = torchlnn.LTC(INPUT_SIZE, 4, solver="euler", ode_unfolds=1)
    step = StepModule(model)
    with pytest.warns(RuntimeWarning, match="unstable"):
        with pytest.raises(FloatingPointError, match="diverging states"):
            step(torch.zeros(1, INPUT_SIZE), step.initial_state(1), torch.full((1, 1), 50.0))


@pytest.mark.parametrize(
    "name", ["ltc-fused-ncp", "cfc-wired-no_gate-mixed", "cfc-wired-pure-proj"]
)
def test_controller_fast_step_matches_reference(name):
    # Without mixed memory the controller calls the cell, which takes its fast step.
    # Setting the layer's fast_path to False keeps the reference step that exports trace.
    model = build(name)
    x, _, timespans = sequence_inputs(model, batch=1, steps=40)
    fast = StreamingController(model)
    assert fast._cell_step == (fast.step_module.lstm is None)
    fast_outputs = stream(fast, x, timespans)

    model.fast_path = False  # read at every step, so it also switches an existing controller
    assert not fast._cell_step
    reference_controller = StreamingController(model)
    reference_outputs = stream(reference_controller, x, timespans)

    assert not reference_controller._cell_step
    torch.testing.assert_close(fast_outputs, reference_outputs, rtol=0, atol=ROUNDING)
