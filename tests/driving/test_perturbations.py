"""Perturbations: stated statistics, determinism and effect on the environment."""

from __future__ import annotations

import numpy as np
import pytest

from torchlnn.driving.env import LaneKeepingEnv
from torchlnn.driving.perturbations import (
    PERTURBATIONS,
    BrightnessContrast,
    CameraOffset,
    GaussianNoise,
    Occlusion,
    Shadow,
    parse_perturbation,
)


def _texture(shape=(78, 200, 3), seed=0):
    # Mid-range random image, so that moderate changes need no clipping.
    return np.random.default_rng(seed).uniform(0.35, 0.65, shape).astype(np.float32)


@pytest.mark.parametrize("variance", [0.1, 0.2, 0.3])
def test_gaussian_noise_has_stated_variance(variance):
    noise = GaussianNoise(variance)
    noise.reset(np.random.default_rng(0))
    frames = np.full((16, 78, 200, 3), 0.5, dtype=np.float32)
    added = noise(frames) - frames

    assert added.var() == pytest.approx(variance, rel=0.01)
    assert abs(added.mean()) < 0.005
    assert added.max() > 1.0  # not clipped to [0, 1]


def test_gaussian_noise_is_reproducible_per_seed():
    frame = _texture()
    first, second, other = GaussianNoise(0.1), GaussianNoise(0.1), GaussianNoise(0.1)
    first.reset(np.random.default_rng(5))
    second.reset(np.random.default_rng(5))
    other.reset(np.random.default_rng(6))

    np.testing.assert_array_equal(first(frame), second(frame))
    assert not np.array_equal(first(frame), other(frame))


@pytest.mark.parametrize("seed", range(4))
def test_brightness_contrast_moves_mean_and_scales_spread(seed):
    perturbation = BrightnessContrast(0.3)
    perturbation.reset(np.random.default_rng(seed))
    frame = _texture(seed=seed)
    out = perturbation(frame)

    assert abs(perturbation.brightness) == pytest.approx(0.09)
    assert perturbation.contrast in (pytest.approx(1.18), pytest.approx(1 / 1.18))
    assert out.mean() - frame.mean() == pytest.approx(perturbation.brightness, abs=1e-5)
    assert out.std() / frame.std() == pytest.approx(perturbation.contrast, rel=1e-4)


def test_shadow_darkens_inside_its_mask_only():
    shadow = Shadow(1.0)
    shadow.reset(np.random.default_rng(3))
    frame = _texture()
    out = shadow(frame)
    mask = shadow.last_mask

    assert 0 < mask.mean() < 1
    np.testing.assert_allclose(out[mask], frame[mask] * shadow.factor, rtol=1e-6)
    np.testing.assert_array_equal(out[~mask], frame[~mask])
    assert shadow.factor == pytest.approx(0.3)


def test_shadow_drifts_and_shares_mask_across_a_window():
    shadow = Shadow(0.5)
    shadow.reset(np.random.default_rng(1))
    window = np.stack([_texture(seed=k) for k in range(4)])
    out = shadow(window)
    mask = shadow.last_mask

    for index in range(4):
        np.testing.assert_allclose(out[index][mask], window[index][mask] * shadow.factor,
                                   rtol=1e-6)
    masks = []
    for _ in range(40):
        shadow(window[0])
        masks.append(shadow.last_mask.copy())
    assert not all(np.array_equal(masks[0], other) for other in masks[1:])


@pytest.mark.parametrize("strength", [0.2, 0.6, 1.0])
def test_occlusion_covers_stated_fraction(strength):
    occlusion = Occlusion(strength)
    occlusion.reset(np.random.default_rng(2))
    frame = _texture()
    out = occlusion(frame)
    covered = occlusion.mask.mean()

    largest_blob = np.pi * 0.2 * 0.12  # area fraction of the largest possible ellipse
    assert occlusion.target_fraction <= covered < occlusion.target_fraction + largest_blob
    np.testing.assert_array_equal(out[~occlusion.mask], frame[~occlusion.mask])
    assert np.all(out[occlusion.mask] < 0.36)  # dark blotches
    np.testing.assert_array_equal(occlusion(frame), out)  # fixed for the run


def test_zero_strength_is_identity():
    frame = _texture()
    for kind in PERTURBATIONS.values():
        perturbation = kind(0.0)
        perturbation.reset(np.random.default_rng(0))
        np.testing.assert_array_equal(perturbation(frame), frame)


def test_camera_offset_moves_the_simulated_camera():
    env = LaneKeepingEnv(render_mode="rgb_array")
    offset = CameraOffset(1.0, yaw_deg=2.0)
    offset.reset(np.random.default_rng(0))
    offset.attach(env)
    shifted, _ = env.reset(seed=1)

    assert abs(env.camera_left) == pytest.approx(0.5)
    assert abs(env.camera_yaw) == pytest.approx(np.radians(2.0))
    offset.detach(env)
    centred = env.render()
    assert env.camera_left == 0.0
    assert not np.array_equal(shifted, centred)


def test_parse_perturbation():
    noise = parse_perturbation("noise:0.2")
    assert isinstance(noise, GaussianNoise)
    assert noise.strength == 0.2
    assert noise.spec() == "noise:0.2"
    with pytest.raises(ValueError, match="name:strength"):
        parse_perturbation("blur:1")
    with pytest.raises(ValueError, match="expected a number"):
        parse_perturbation("noise:high")
    with pytest.raises(ValueError, match=">= 0"):
        GaussianNoise(-0.1)


def test_perturbations_reject_uint8_frames():
    with pytest.raises(TypeError, match="float32"):
        GaussianNoise(0.1)(np.zeros((78, 200, 3), dtype=np.uint8))
