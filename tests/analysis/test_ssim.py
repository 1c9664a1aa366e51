"""SSIM against closed forms computed by hand and against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchlnn.analysis import gaussian_window, ssim, ssim_map


def test_window_is_normalised_gaussian():
    window = gaussian_window(1.5)
    assert window.shape == (11,)  # radius int(3.5 * 1.5 + 0.5) = 5
    assert window.sum() == pytest.approx(1.0)
    assert window[5] / window[6] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


def test_identical_images_score_one():
    image = np.random.default_rng(0).random((16, 20))
    assert ssim(image, image, data_range=1.0) == pytest.approx(1.0)


def test_constant_images_luminance_term():
    # Constant images: sigma = 0 everywhere, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.6
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    value = ssim(np.full((12, 13), a), np.full((12, 13), b), data_range=1.0)
    assert value == pytest.approx(expected, rel=1e-12)
    assert ssim_map(np.full((12, 13), a), np.full((12, 13), b), data_range=1.0).shape == (2, 3)


def test_antisymmetric_window_closed_form():
    # One 11 x 11 window. x = +1 above the anti-diagonal symmetry, -1 below, 0 at the centre:
    # x(-p) = -x(p), so its Gaussian-weighted mean is 0 and its variance is 1 - w_c, with
    # w_c = g(0)^2 the centre weight. For y = alpha x + beta: mu_y = beta,
    # sigma_xy = alpha (1 - w_c), sigma_y^2 = alpha^2 (1 - w_c).
    offsets = np.arange(-5, 6)
    rows, cols = np.meshgrid(offsets, offsets, indexing="ij")
    x = np.sign(rows * 11 + cols).astype(float)
    alpha, beta, L = -0.5, 0.3, 2.0
    y = alpha * x + beta
    g0 = 1.0 / np.exp(-(offsets**2) / (2 * 1.5**2)).sum()
    variance = 1.0 - g0**2
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    expected = (c1 / (beta**2 + c1)) * (
        (2 * alpha * variance + c2) / ((1 + alpha**2) * variance + c2)
    )
    assert ssim(x, y, data_range=L) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("shape, data_range", [((16, 16), 1.0), ((23, 31), 1.0), ((40, 17), 255.0)])
def test_matches_scikit_image(shape, data_range):
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape) * data_range
    y = np.clip(x + rng.normal(scale=0.2 * data_range, size=shape), 0, data_range)
    reference = metrics.structural_similarity(
        x, y, data_range=data_range, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(x, y, data_range=data_range) == pytest.approx(reference, rel=1e-9, abs=1e-12)


def test_batch_of_maps_and_tensors():
    rng = np.random.default_rng(3)
    x = rng.random((2, 3, 14, 15))
    y = rng.random((2, 3, 14, 15))
    batch = ssim(torch.from_numpy(x), torch.from_numpy(y), data_range=1.0)
    assert batch.shape == (2, 3)
    assert batch[1, 2] == pytest.approx(ssim(x[1, 2], y[1, 2], data_range=1.0))


def test_rejects_bad_arguments():
    image = np.zeros((12, 12))
    with pytest.raises(ValueError, match="same shape"):
        ssim(image, np.zeros((12, 13)), data_range=1.0)
    with pytest.raises(ValueError, match="smaller than the 11 x 11"):
        ssim(np.zeros((8, 30)), np.zeros((8, 30)), data_range=1.0)
    with pytest.raises(ValueError, match="data_range must be positive"):
        ssim(image, image, data_range=0.0)
