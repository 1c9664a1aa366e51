"""VisualBackProp against cases computed by hand; gradient saliency against Captum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchlnn.analysis import (
    attention_robustness,
    conv_feature_maps,
    integrated_gradients,
    live_channels,
    smoothgrad,
    visual_backprop,
)

from .models import FrameRegressor, TinyPolicy


def fixed_conv(in_channels, out_channels, kernel, stride=1, padding=0, weight=None):
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                     bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight if weight is not None else torch.ones_like(conv.weight))
    return conv


def test_vbp_overlapping_deconvolution_by_hand():
    # Input: ones (3 x 3). conv1: 1x1, weight 1 -> average map A1 = ones (3 x 3).
    # conv2: 3x3, stride 2, padding 1, weights 1 -> each output sums the 4 in-image pixels
    # of its window: A2 = [[4, 4], [4, 4]].
    # Deconvolving A2 with a 3x3 all-ones kernel, stride 2, padding 1 gives
    # 4 * [[1, 2, 1], [2, 4, 2], [1, 2, 1]]; times A1 and through conv1's 1x1 deconvolution it
    # stays so. Min-max normalised: [[0, 1/3, 0], [1/3, 1, 1/3], [0, 1/3, 0]].
    extractor = nn.Sequential(
        fixed_conv(1, 1, 1), nn.ReLU(), fixed_conv(1, 1, 3, stride=2, padding=1), nn.ReLU()
    )
    frames = torch.ones(1, 1, 3, 3)
    raw = visual_backprop(extractor, frames, normalize=False)
    np.testing.assert_allclose(raw[0], 4 * np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]))
    normalised = visual_backprop(extractor, frames)
    third = 1 / 3
    np.testing.assert_allclose(normalised[0], [[0, third, 0], [third, 1, third], [0, third, 0]])


def test_vbp_channel_average_and_blocks_by_hand():
    # conv1: 1x1 with channel weights [1, 3] -> maps x and 3x, average A1 = 2x.
    # conv2: 2x2 stride 2, all weights 1/4 -> 0.25 * sum over the block of (x + 3x) = block sum
    # of x: A2 = [[2, 4], [3, 4]] for the x below. The deconvolution copies each value over its
    # 2 x 2 block; times A1 = 2x:
    x = torch.tensor([[1.0, 0, 0, 2], [0, 1, 2, 0], [3, 0, 0, 0], [0, 0, 0, 4]])
    expected = np.array([[4.0, 0, 0, 16], [0, 4, 16, 0], [18, 0, 0, 0], [0, 0, 0, 32]])
    extractor = [
        fixed_conv(1, 2, 1, weight=torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1)),
        nn.ReLU(),
        fixed_conv(2, 1, 2, stride=2, weight=torch.full((1, 2, 2, 2), 0.25)),
        nn.ReLU(),
    ]  # a list of layers is run in order
    raw = visual_backprop(extractor, x.reshape(1, 1, 4, 4), normalize=False)
    np.testing.assert_allclose(raw[0], expected)
    np.testing.assert_allclose(visual_backprop(extractor, x.reshape(1, 1, 4, 4))[0],
                               expected / 32)


def test_vbp_uses_maps_after_activation():
    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), nn.ReLU(), nn.Conv2d(5, 4, 3),
                              nn.ReLU())
    frames = torch.rand(2, 3, 15, 15)
    maps = conv_feature_maps(extractor, frames)
    assert [type(feature.module) for feature in maps] == [nn.Conv2d, nn.Conv2d]
    assert maps[0].input_size == (15, 15)
    assert (maps[0].output >= 0).all()  # after ReLU
    expected = F.relu(extractor[0](frames))
    torch.testing.assert_close(maps[0].output, expected)

    # By hand with the formula: A2 up through conv2 (3x3, stride 1) times A1, then up through
    # conv1 (3x3, stride 2) to 15 x 15.
    a1 = expected.mean(1, keepdim=True)
    a2 = F.relu(extractor[2](expected)).mean(1, keepdim=True)
    up = F.conv_transpose2d(a2, torch.ones(1, 1, 3, 3)) * a1
    up = F.conv_transpose2d(up, torch.ones(1, 1, 3, 3), stride=2)
    np.testing.assert_allclose(visual_backprop(extractor, frames, normalize=False),
                               up[:, 0].detach().numpy(), rtol=1e-5)


def test_vbp_sequence_shape_and_range():
    policy = TinyPolicy()
    frames = torch.rand(2, 4, 3, 24, 32)
    maps = visual_backprop(policy.conv_head, frames)
    assert maps.shape == (2, 4, 24, 32)
    assert maps.min() == 0.0
    assert maps.max() == pytest.approx(1.0)
    single = visual_backprop(policy.conv_head, frames[1, 2:3])
    np.testing.assert_allclose(maps[1, 2], single[0], rtol=1e-5, atol=1e-6)


def test_vbp_pooling_and_feature_modules():
    extractor = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 4, 3), nn.ReLU())
    maps = visual_backprop(extractor, torch.rand(1, 3, 16, 16))
    assert maps.shape == (1, 16, 16)
    relus = [extractor[1], extractor[4]]
    chosen = visual_backprop(extractor, torch.rand(1, 3, 16, 16), feature_modules=relus)
    assert chosen.shape == (1, 16, 16)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        visual_backprop(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2)),
                        torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="frames must have shape"):
        visual_backprop(extractor, torch.rand(3, 16, 16))


def test_smoothgrad_without_noise_is_gradient():
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(1)
    model = FrameRegressor()
    frames = torch.rand(3, 3, 24, 32)
    ours = smoothgrad(model, frames, samples=1, noise_level=0.0, output_index=1,
                      normalize=False)
    reference = captum.Saliency(model).attribute(
        frames.clone().requires_grad_(True), target=1, abs=True
    ).amax(dim=1)
    np.testing.assert_allclose(ours, reference.detach().numpy(), rtol=1e-6, atol=1e-9)


def test_smoothgrad_is_seeded_and_smooths():
    torch.manual_seed(1)
    model = FrameRegressor()
    frames = torch.rand(2, 3, 24, 32)
    first = smoothgrad(model, frames, samples=4, seed=7)
    again = smoothgrad(model, frames, samples=4, seed=7)
    other = smoothgrad(model, frames, samples=4, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert first.shape == (2, 24, 32)


def test_integrated_gradients_matches_captum():
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(2)
    model = FrameRegressor()
    frames = torch.rand(2, 3, 24, 32)
    ours = integrated_gradients(model, frames, steps=16, absolute=False)
    reference = captum.IntegratedGradients(model).attribute(
        frames, baselines=torch.zeros_like(frames), target=0, n_steps=16,
        method="riemann_middle",
    )
    np.testing.assert_allclose(ours, reference.sum(dim=1).detach().numpy(), rtol=1e-4,
                               atol=1e-7)


def test_integrated_gradients_completeness():
    torch.manual_seed(3)
    model = FrameRegressor()
    frames = torch.rand(2, 3, 24, 32)
    baseline = torch.full_like(frames, 0.5)
    attributions = integrated_gradients(model, frames, baseline=baseline, steps=64,
                                        absolute=False)
    with torch.no_grad():
        difference = (model(frames) - model(baseline))[:, 0].double().numpy()
    np.testing.assert_allclose(attributions.sum(axis=(1, 2)), difference, rtol=0.02, atol=1e-4)


def test_sequence_saliency_explains_each_step():
    torch.manual_seed(4)
    policy = TinyPolicy()
    frames = torch.rand(1, 3, 3, 24, 32)
    maps = smoothgrad(policy, frames, samples=1, noise_level=0.0, normalize=False)

    x = frames.clone().requires_grad_(True)
    output = policy(x)
    (gradient,) = torch.autograd.grad(output[0, 1, 0], x)
    expected = gradient[0, 1].abs().amax(dim=0)  # frame 1 explained by the output at step 1
    np.testing.assert_allclose(maps[0, 1], expected.numpy(), rtol=1e-5, atol=1e-10)


def test_robustness_zero_noise_and_noise():
    torch.manual_seed(5)
    policy = TinyPolicy()
    frames = torch.rand(2, 3, 3, 24, 32)

    def attention(x):
        return visual_backprop(policy.conv_head, x)

    clean = attention_robustness(attention, frames, noise_std=0.0)
    assert clean.ssim.shape == (2, 3)
    assert clean.mean == pytest.approx(1.0)
    noisy = attention_robustness(attention, frames, noise_std=0.5, seed=1)
    assert noisy.mean < 0.99
    assert noisy.mean == pytest.approx(float(noisy.ssim.mean()))
    again = attention_robustness(attention, frames, noise_std=0.5, seed=1)
    assert again.mean == noisy.mean


def test_live_channels_counts_dead_channels():
    torch.manual_seed(0)
    extractor = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU())
    frames = torch.rand(6, 3, 12, 12)
    with torch.no_grad():
        extractor[0].bias[1] = -1e3  # channel 1 of layer 1 is zero on every frame
        extractor[2].bias.fill_(-1e3)  # every channel of layer 2 is dead

    fractions = live_channels(extractor, frames)

    np.testing.assert_array_equal(fractions, [0.75, 0.0])


def test_live_channels_all_live_on_fresh_net():
    extractor = nn.Sequential(fixed_conv(1, 2, 1), nn.ReLU())
    frames = torch.rand(3, 1, 5, 5) + 0.1  # positive pixels, weights 1: every channel is live

    np.testing.assert_array_equal(live_channels(extractor, frames), [1.0])
