"""The structural similarity index (SSIM) of Wang, Bovik, Sheikh and Simoncelli (2004).

Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality assessment: from error
visibility to structural similarity", IEEE Transactions on Image Processing 13(4), 2004. For
two images ``x`` and ``y``, every window gives

    SSIM(x, y) = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
                 / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2)),

with ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` and ``L`` the data range. The means, variances and
covariance are weighted by a Gaussian window of standard deviation ``sigma`` (1.5 pixels in
the paper), truncated at ``truncate * sigma`` pixels and normalised to sum to 1. The window
moves over every position where it fits entirely inside the image, and the mean of the map
is the image's SSIM. With the default arguments this equals
``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=L)``, whose average also skips the border.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .activity import to_numpy


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Return the normalised 1-D Gaussian window, of radius ``int(truncate * sigma + 0.5)``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}.")
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    window = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return window / window.sum()


def _filter(images: Tensor, window: Tensor) -> Tensor:
    """Gaussian-weighted local means where the window fits, (M, 1, H, W) -> (M, 1, H', W')."""
    size = window.shape[0]
    rows = F.conv2d(images, window.reshape(1, 1, 1, size))  # along the width
    return F.conv2d(rows, window.reshape(1, 1, size, 1))  # along the height


def ssim_map(
    image1: np.ndarray | Tensor,
    image2: np.ndarray | Tensor,
    *,
    data_range: float,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """Return the local SSIM at every window position, (..., H - 2r, W - 2r).

    Args:
        image1, image2: grey-level images of the same shape (..., H, W); leading dimensions
            are a batch. Colour images are compared per channel by putting channels in front.
        data_range: L, the range of values the images can take (1.0 for maps in [0, 1], 255
            for 8-bit images).
        sigma: the Gaussian window's standard deviation, in pixels.
        truncate: the window's radius r, in standard deviations (r = int(truncate * sigma +
            0.5), 5 pixels by default).
        k1, k2: the stabilising constants, positive.
    """
    x = to_numpy(image1)
    y = to_numpy(image2)
    if x.shape != y.shape:
        raise ValueError(f"the images must have the same shape, got {x.shape} and {y.shape}.")
    if x.ndim < 2:
        raise ValueError(f"images must have shape (..., H, W), got shape {x.shape}.")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}.")
    if not (k1 > 0 and k2 > 0):
        raise ValueError(f"k1 and k2 must be positive, got k1={k1!r} and k2={k2!r}.")
    window = torch.from_numpy(gaussian_window(sigma, truncate))
    size = window.shape[0]
    height, width = x.shape[-2:]
    if height < size or width < size:
        raise ValueError(
            f"the images ({height} x {width}) are smaller than the {size} x {size} Gaussian "
            f"window (sigma={sigma}, truncate={truncate}); use a smaller sigma or larger images."
        )

    lead = x.shape[:-2]
    x_t = torch.from_numpy(x).reshape(-1, 1, height, width)  # (..., H, W) -> (M, 1, H, W)
    y_t = torch.from_numpy(y).reshape(-1, 1, height, width)
    mu_x = _filter(x_t, window)
    mu_y = _filter(y_t, window)
    var_x = _filter(x_t * x_t, window) - mu_x**2
    var_y = _filter(y_t * y_t, window) - mu_y**2
    covariance = _filter(x_t * y_t, window) - mu_x * mu_y

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * covariance + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    local = (numerator / denominator).numpy()  # (M, 1, H', W')
    return local.reshape(*lead, *local.shape[-2:])


def ssim(
    image1: np.ndarray | Tensor,
    image2: np.ndarray | Tensor,
    *,
    data_range: float,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float | np.ndarray:
    """Return the mean SSIM of two images: a float for (H, W) images, an array (...) otherwise.

    1 means identical structure; values near 0 mean unrelated images. See ``ssim_map`` for the
    arguments and the module docstring for the formula.
    """
    local = ssim_map(
        image1, image2, data_range=data_range, sigma=sigma, truncate=truncate, k1=k1, k2=k2
    )
    means = local.mean(axis=(-2, -1))
    return float(means) if means.ndim == 0 else means
