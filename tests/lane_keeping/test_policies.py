"""Lane-keeping policies: shapes, construction checks, and streaming against whole sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlnn.driving.policies import (
    POLICY_KINDS,
    ConvHead,
    PolicyDriver,
    build_policy,
    paper_wiring,
)


def test_conv_head_gives_32_features_from_4x19_maps():
    head = ConvHead()
    assert head.map_size == (4, 19)
    assert head(torch.rand(2, 3, 3, 78, 200)).shape == (2, 3, 32)


def test_conv_head_feature_mismatch_fails_at_construction():
    with pytest.raises(ValueError, match="give 40 features"):
        ConvHead(channels=(24, 36, 48, 64, 10))


def test_conv_head_rejects_frames_too_small_for_the_stack():
    with pytest.raises(ValueError, match="too small"):
        ConvHead(frame_size=(20, 20))


def test_conv_head_glorot_init_zeroes_biases():
    head = ConvHead(init="glorot")
    convs = [layer for layer in head.convs if isinstance(layer, torch.nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        assert torch.count_nonzero(conv.bias) == 0
        fan_in, fan_out = conv.weight[0].numel(), conv.weight[:, 0].numel()
        limit = (6 / (fan_in + fan_out)) ** 0.5
        assert conv.weight.abs().max() <= limit


def test_conv_head_pytorch_init_keeps_random_biases():
    head = ConvHead(init="pytorch")
    convs = [layer for layer in head.convs if isinstance(layer, torch.nn.Conv2d)]
    assert all(torch.count_nonzero(conv.bias) == conv.bias.numel() for conv in convs)


def test_glorot_init_starts_more_channels_live():
    from torchlnn.analysis import live_channels

    frames = torch.rand(16, 3, 78, 200, generator=torch.Generator().manual_seed(0))
    live = {}
    for init in ("pytorch", "glorot"):
        counts = []
        for seed in range(10):
            torch.manual_seed(seed)
            counts.append(live_channels(ConvHead(init=init).convs, frames)[-1] * 8)
        live[init] = sum(counts) / len(counts)
    assert live["glorot"] >= 7.0
    assert live["pytorch"] < live["glorot"]


def test_conv_head_channels_last_matches_plain():
    """The head runs its convs in channels-last order. Values and gradients must not change."""
    torch.manual_seed(0)
    head = ConvHead().double()
    frames = torch.rand(2, 3, 3, 78, 200, dtype=torch.float64)
    features = head(frames)

    # The same computation with channels-first images, written out step by step.
    images = frames.reshape(6, 3, 78, 200)
    maps = head.convs(images)
    assert maps.is_contiguous()
    expected = torch.einsum("pma,mau->pmu", maps.flatten(2), head.map_weight) + head.map_bias
    expected = head.norm(expected.reshape(2, 3, 32))
    torch.testing.assert_close(features, expected, rtol=1e-10, atol=1e-12)

    weight = head.convs[1].weight
    (grad_fast,) = torch.autograd.grad(features.square().sum(), weight)
    (grad_plain,) = torch.autograd.grad(expected.square().sum(), weight)
    torch.testing.assert_close(grad_fast, grad_plain, rtol=1e-10, atol=1e-12)
    assert all(parameter.is_contiguous() for parameter in head.parameters())


def test_conv_head_rejects_unknown_init():
    with pytest.raises(ValueError, match="init must be one of"):
        ConvHead(init="he")


def test_policy_records_conv_init_in_config():
    assert build_policy("cnn").config["conv_init"] == "glorot"
    assert build_policy("cnn", conv_init="pytorch").config["conv_init"] == "pytorch"


@pytest.mark.parametrize("kind", POLICY_KINDS)
def test_policy_output_shape_and_streaming_equals_sequence(kind):
    torch.manual_seed(0)
    policy = build_policy(kind).eval()
    frames = torch.rand(2, 6, 3, 78, 200)
    with torch.no_grad():
        curvature, _ = policy(frames)
    assert curvature.shape == (2, 6)
    driver = PolicyDriver(policy)
    streamed = torch.stack([driver.step(frames[:, t]) for t in range(6)], dim=1)
    torch.testing.assert_close(streamed, curvature, rtol=0, atol=1e-6)
    driver.reset()
    first = driver(frames[0, 0].permute(1, 2, 0).numpy(), {})
    assert first == pytest.approx(float(curvature[0, 0]), abs=1e-6)


def test_driver_steps_on_one_thread(monkeypatch):
    policy = build_policy("cnn").eval()
    seen = []
    original = type(policy.head).forward

    def recording_forward(head, frames):
        seen.append(torch.get_num_threads())
        return original(head, frames)

    monkeypatch.setattr(type(policy.head), "forward", recording_forward)
    frame = np.random.default_rng(0).random((78, 200, 3), dtype=np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        PolicyDriver(policy)(frame)
        PolicyDriver(policy, threads=None)(frame)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)

    assert seen == [1, 2]
    assert after == 2


def test_driver_rejects_zero_threads():
    with pytest.raises(ValueError, match="threads must be at least 1 or None"):
        PolicyDriver(build_policy("cnn"), threads=0)


def test_policy_rejects_wrong_frame_size_with_fix():
    policy = build_policy("ncp-ltc")
    with pytest.raises(ValueError, match=r"\(B, T, 3, 78, 200\)") as error:
        policy(torch.rand(1, 2, 3, 64, 64))
    assert "frame_size" in str(error.value)
    with pytest.raises(ValueError, match="B, T, 3, H, W"):
        policy(torch.rand(2, 3, 78, 200))


def test_ncp_policy_uses_paper_circuit():
    policy = build_policy("ncp-ltc")
    wiring = policy.controller.wiring
    assert wiring.units == 19 and wiring.output_dim == 1
    assert wiring.input_dim == 32
    assert wiring.neuron_types().count("inter") == 12
    assert wiring.neuron_types().count("command") == 6
    assert policy.controller.rnn_cell.ode_unfolds == 6
    assert np.array_equal(wiring.adjacency_matrix, paper_wiring().adjacency_matrix)


def test_unknown_policy_kind_lists_kinds():
    with pytest.raises(ValueError, match="ncp-ltc"):
        build_policy("transformer")
