"""Where an image model looks: VisualBackProp, gradient saliency and their robustness to noise.

Frames are float tensors (B, C, H, W), or (B, T, C, H, W) for sequences of camera frames. The
feature extractor sees a sequence frame by frame. Every map has the frames' shape without the
channel axis, (B, H, W) or (B, T, H, W), and is normalised to [0, 1] per frame unless
``normalize=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activity import to_numpy
from .ssim import ssim

# Modules that may follow a convolution and keep its feature map's shape and meaning: the
# feature map VisualBackProp averages is the one after them (after the activation).
_FOLLOWERS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.InstanceNorm2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)


def as_frames(frames: np.ndarray | Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Return frames as a float (S, C, H, W) tensor and the leading shape, (B,) or (B, T)."""
    if not isinstance(frames, Tensor):
        frames = torch.as_tensor(np.asarray(frames), dtype=torch.float32)
    if frames.dim() not in (4, 5):
        raise ValueError(
            f"frames must have shape (B, C, H, W) or (B, T, C, H, W), got {frames.dim()} dims "
            f"with shape {tuple(frames.shape)}. Add a batch axis with frames[None] for one "
            f"frame or one sequence."
        )
    if not frames.is_floating_point():
        raise TypeError(
            f"frames must be floating point, got dtype {frames.dtype}; convert 8-bit images "
            f"with frames.float() / 255."
        )
    lead = tuple(frames.shape[:-3])
    return frames.reshape(-1, *frames.shape[-3:]), lead  # (..., C, H, W) -> (S, C, H, W)


def _normalize(maps: Tensor) -> Tensor:
    """Scale each map (S, H, W) to [0, 1]; a constant map becomes 0."""
    flat = maps.reshape(maps.shape[0], -1)  # (S, H * W)
    low = flat.min(dim=1).values[:, None, None]
    span = (flat.max(dim=1).values[:, None, None] - low).clamp_min(0)
    safe = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (maps - low) / safe, torch.zeros_like(maps))


# ---------------------------------------------------------------------- VisualBackProp


@dataclass
class FeatureMap:
    """One feature map of a convolutional extractor.

    Attributes:
        module: the ``nn.Conv2d`` that produced it (before its activation), or the module
            named in ``feature_modules`` when that is not a convolution.
        input_size: (H_in, W_in), the spatial size of that module's input.
        output: the map after the convolution's activation, (S, C, H, W).
    """

    module: nn.Module
    input_size: tuple[int, int]
    output: Tensor


def conv_feature_maps(
    extractor: nn.Module | Sequence[nn.Module],
    frames: Tensor,
    *,
    feature_modules: Sequence[nn.Module] | None = None,
) -> list[FeatureMap]:
    """Run ``extractor`` on (S, C, H, W) frames and return its feature maps, shallowest first.

    By default every call of an ``nn.Conv2d`` gives one feature map: the convolution's output,
    or the output of the activation (or normalisation, or dropout) modules that are applied to
    it right after. An activation written as a function in ``forward`` (``F.relu``) is not a
    module and cannot be seen, so the map is then the convolution's raw output. In that case
    name the modules whose outputs are the feature maps with ``feature_modules``.

    Args:
        extractor: the module, or a list of modules applied one after the other (as
            ``nn.Sequential`` would).
        frames: (S, C, H, W).
        feature_modules: modules whose outputs are the feature maps, in any order; each call
            gives one map, in call order.
    """
    if isinstance(extractor, (list, tuple, nn.ModuleList)):
        extractor = nn.Sequential(*extractor)
    if not isinstance(extractor, nn.Module):
        raise TypeError(
            f"extractor must be an nn.Module or a list of modules, got {type(extractor).__name__}."
        )

    log: list[tuple[nn.Module, Tensor, Tensor]] = []

    def hook(module, args, output):
        if args and isinstance(args[0], Tensor) and isinstance(output, Tensor):
            log.append((module, args[0], output))

    if feature_modules is not None:
        watched = list(feature_modules)
    else:
        watched = [
            module
            for module in extractor.modules()
            if isinstance(module, nn.Conv2d) or isinstance(module, _FOLLOWERS)
        ]
    if not any(isinstance(module, nn.Conv2d) for module in watched) and feature_modules is None:
        raise ValueError(
            f"{type(extractor).__name__} has no nn.Conv2d layer, so VisualBackProp has no "
            f"feature maps to combine. Pass the convolutional part of the model, or name the "
            f"modules whose outputs are feature maps with feature_modules=[...]."
        )
    handles = [module.register_forward_hook(hook) for module in watched]
    try:
        extractor(frames)
    finally:
        for handle in handles:
            handle.remove()

    maps: list[FeatureMap] = []
    for module, module_input, output in log:
        if output.dim() != 4:
            continue
        if feature_modules is not None or isinstance(module, nn.Conv2d):
            size = tuple(module_input.shape[-2:]) if module_input.dim() == 4 else output.shape[-2:]
            maps.append(FeatureMap(module, size, output))
        elif maps and module_input is maps[-1].output and output.shape == module_input.shape:
            maps[-1].output = output  # an activation applied to the latest map
    if not maps:
        raise ValueError(
            f"{type(extractor).__name__} produced no 4-D feature map for frames of shape "
            f"{tuple(frames.shape)}."
        )
    return maps


def live_channels(
    extractor: nn.Module | Sequence[nn.Module],
    frames: Tensor,
    *,
    feature_modules: Sequence[nn.Module] | None = None,
) -> np.ndarray:
    """Return, for each feature map of ``extractor``, the fraction of its channels that are live.

    A channel is live when its activation is positive at some position of some frame. A ReLU
    channel that is zero on every frame passes no gradient to its convolution, so training
    cannot bring it back. When the last layer has no live channel, the features, and so the
    model's output, no longer depend on the image.

    Args:
        extractor, feature_modules: as for :func:`conv_feature_maps`.
        frames: (S, C, H, W), for example frames of the validation or test set.

    Returns an array (L,) with one fraction in [0, 1] per feature map, shallowest first.
    """
    with torch.no_grad():
        maps = conv_feature_maps(extractor, frames, feature_modules=feature_modules)
    fractions = []
    for feature in maps:
        peak = feature.output.amax(dim=(0, 2, 3))  # (S, C, H, W) -> (C,)
        fractions.append((peak > 0).double().mean().item())
    return np.asarray(fractions)


def _upscale(mask: Tensor, feature: FeatureMap, size: tuple[int, int]) -> Tensor:
    """Scale a mask (S, 1, h, w) up to ``size`` through the layer that produced it.

    For a convolution, a transposed convolution with the same kernel size, stride, padding and
    dilation and all weights 1 spreads every value over the input pixels that produced it.
    Bilinear interpolation closes any remaining size difference, such as a pooling layer
    between two convolutions. Another module is scaled by bilinear interpolation alone.
    """
    conv = feature.module
    if isinstance(conv, nn.Conv2d):
        kernel, stride, dilation = conv.kernel_size, conv.stride, conv.dilation
        if isinstance(conv.padding, str):  # "valid" or "same"
            padding = tuple(0 if conv.padding == "valid" else d * (k - 1) // 2
                            for k, d in zip(kernel, dilation))
        else:
            padding = conv.padding
        base = [
            (mask.shape[2 + axis] - 1) * stride[axis]
            - 2 * padding[axis]
            + dilation[axis] * (kernel[axis] - 1)
            + 1
            for axis in range(2)
        ]
        extra = [feature.input_size[axis] - base[axis] for axis in range(2)]
        if all(0 <= extra[axis] < max(stride[axis], dilation[axis]) for axis in range(2)):
            ones = mask.new_ones(1, 1, *kernel)
            mask = F.conv_transpose2d(
                mask, ones, stride=stride, padding=padding, output_padding=tuple(extra),
                dilation=dilation,
            )  # (S, 1, H_in, W_in)
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = F.interpolate(mask, size=tuple(size), mode="bilinear", align_corners=False)
    return mask


def visual_backprop(
    extractor: nn.Module | Sequence[nn.Module],
    frames: np.ndarray | Tensor,
    *,
    feature_modules: Sequence[nn.Module] | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """Compute VisualBackProp attention maps: which pixels the convolutional features come from.

    Bojarski et al., "VisualBackProp: efficient visualization of CNNs" (arXiv:1611.05418,
    2016), a method made to show where a driving network looks:

    1. average each convolutional layer's feature maps (after the activation) over channels;
    2. take the deepest average, scale it up to the previous layer's map size with a
       transposed convolution of that layer's kernel size and stride and all weights 1, and
       multiply it point by point with the previous layer's average;
    3. repeat down to the first layer, then scale up to the input resolution;
    4. normalise each map to [0, 1] (min-max).

    Args:
        extractor: the convolutional part of the model (an ``nn.Module``, or a list of
            modules applied in order). Fully connected layers after the convolutions are run
            but ignored. See ``conv_feature_maps`` for how feature maps are found.
        frames: (B, C, H, W) or (B, T, C, H, W).
        feature_modules: the modules whose outputs are the feature maps, when the default
            (each ``nn.Conv2d`` and the activation modules that follow it) does not fit.
        normalize: scale each map to [0, 1].

    Returns:
        float64 array (B, H, W) or (B, T, H, W).
    """
    flat, lead = as_frames(frames)
    with torch.no_grad():
        features = conv_feature_maps(extractor, flat, feature_modules=feature_modules)
        averages = [feature.output.mean(dim=1, keepdim=True) for feature in features]

        mask = averages[-1]  # (S, 1, h_L, w_L)
        for layer in range(len(features) - 1, -1, -1):
            if layer > 0:
                size = tuple(averages[layer - 1].shape[-2:])
            else:
                size = tuple(flat.shape[-2:])
            mask = _upscale(mask, features[layer], size)
            if layer > 0:
                mask = mask * averages[layer - 1]
        maps = mask[:, 0]  # (S, H, W)
        if normalize:
            maps = _normalize(maps)
    return to_numpy(maps).reshape(*lead, *maps.shape[-2:])


# ---------------------------------------------------------------------- gradient saliency


def _explained_output(output: Tensor, output_index: int) -> Tensor:
    """Pick the explained output: (B, T) per step for sequences of frames, else (B,)."""
    if output.dim() == 3:
        return output[..., output_index]  # (B, T, O) -> (B, T)
    if output.dim() == 2:
        return output[:, output_index]  # (B, O) -> (B,)
    if output.dim() == 1:
        return output
    raise ValueError(
        f"the model's output has shape {tuple(output.shape)}; expected (B, O), (B, T, O) or "
        f"(B,). Pass target=... to reduce it to one value per sample (and step)."
    )


def _input_gradients(
    model: nn.Module,
    x: Tensor,
    output_index: int,
    target: Callable[[Tensor], Tensor] | None,
) -> Tensor:
    """Return the gradient of the explained output with respect to the frames, shaped like x.

    For a sequence (B, T, C, H, W) and a per-step output (B, T), frame t gets the gradient of
    the output at step t (one backward pass per step). Otherwise the gradient of the one
    output per sample with respect to every frame.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        result = model(x)
        output = result[0] if isinstance(result, tuple) else result
        if target is not None:
            explained = target(output)
        else:
            explained = _explained_output(output, output_index)
        if x.dim() == 5 and explained.shape == x.shape[:2]:
            gradient = torch.zeros_like(x)
            steps = x.shape[1]
            for t in range(steps):
                (step_gradient,) = torch.autograd.grad(
                    explained[:, t].sum(), x, retain_graph=t < steps - 1
                )
                gradient[:, t] = step_gradient[:, t]
            return gradient
        if explained.shape != x.shape[:1]:
            raise ValueError(
                f"the explained output must have one value per sample, ({x.shape[0]},), or per "
                f"sample and step, {tuple(x.shape[:2])}; got {tuple(explained.shape)}."
            )
        (gradient,) = torch.autograd.grad(explained.sum(), x)
    return gradient


def smoothgrad(
    model: nn.Module,
    frames: np.ndarray | Tensor,
    *,
    samples: int = 16,
    noise_level: float = 0.15,
    output_index: int = 0,
    target: Callable[[Tensor], Tensor] | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> np.ndarray:
    r"""Compute SmoothGrad saliency maps: input gradients averaged over noisy copies.

    Smilkov et al., "SmoothGrad: removing noise by adding noise" (arXiv:1706.03825, 2017):

    .. math::

        M(x) = \max_c \frac{1}{n} \sum_{k=1}^{n}
               \left| \frac{\partial y}{\partial x_c}(x + \epsilon_k) \right|, \qquad
        \epsilon_k \sim \mathcal{N}(0, (\text{noise\_level} \cdot (\max x - \min x))^2),

    with the range taken per frame. ``samples=1, noise_level=0`` gives the plain gradient
    magnitude (Simonyan et al., 2014).

    Args:
        model: maps frames to outputs: (B, C, H, W) -> (B, O), or (B, T, C, H, W) -> (B, T, O)
            for a recurrent policy (frame t is explained by the output at step t) or (B, O).
        frames: (B, C, H, W) or (B, T, C, H, W).
        samples: n, the number of noisy copies.
        noise_level: the noise's standard deviation as a fraction of each frame's range.
        output_index: the output feature to explain.
        target: instead of ``output_index``, a function from the output to the explained
            values, (B,) or (B, T).
        seed: seed of the noise.
        normalize: scale each map to [0, 1].

    Returns:
        float64 array (B, H, W) or (B, T, H, W).
    """
    x = frames if isinstance(frames, Tensor) else torch.as_tensor(np.asarray(frames))
    as_frames(x)  # checks the shape and dtype
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an int >= 1, got {samples!r}.")
    if not noise_level >= 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level!r}.")

    generator = torch.Generator().manual_seed(seed)
    flat = x.reshape(-1, *x.shape[-3:])  # (S, C, H, W)
    span = (flat.amax(dim=(1, 2, 3)) - flat.amin(dim=(1, 2, 3))).reshape(*x.shape[:-3], 1, 1, 1)
    total = torch.zeros_like(x)
    for _ in range(samples):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        noisy = x + noise * (noise_level * span)
        total = total + _input_gradients(model, noisy, output_index, target).abs()
    maps = (total / samples).amax(dim=-3)  # max over channels: (..., H, W)
    return _finish(maps, normalize)


def integrated_gradients(
    model: nn.Module,
    frames: np.ndarray | Tensor,
    *,
    baseline: Tensor | float = 0.0,
    steps: int = 32,
    output_index: int = 0,
    target: Callable[[Tensor], Tensor] | None = None,
    absolute: bool = True,
    normalize: bool = True,
) -> np.ndarray:
    r"""Compute integrated-gradients attribution maps (Sundararajan et al., ICML 2017).

    .. math::

        IG_c(x) = (x_c - x'_c) \frac{1}{m} \sum_{k=1}^{m}
                  \frac{\partial y}{\partial x_c}\left(x' + \tfrac{k - 1/2}{m} (x - x')\right),

    the midpoint rule for the path integral from the baseline ``x'`` to ``x``. The map is the
    sum over channels, ``sum_c IG_c``, and its magnitude when ``absolute=True``. Summed over
    all pixels, the signed attributions approximate ``y(x) - y(x')`` (completeness).

    Args:
        model, frames, output_index, target: as in ``smoothgrad``.
        baseline: x', a tensor shaped like the frames or a number (default 0, a black frame).
        steps: m, the number of points on the path.
        absolute: return the magnitude of the channel sum (default) or the signed sum.
        normalize: scale each map to [0, 1] (only with ``absolute=True``).

    Returns:
        float64 array (B, H, W) or (B, T, H, W).
    """
    x = frames if isinstance(frames, Tensor) else torch.as_tensor(np.asarray(frames))
    as_frames(x)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
    if not isinstance(baseline, Tensor):
        baseline = torch.full_like(x, float(baseline))
    if baseline.shape != x.shape:
        raise ValueError(
            f"baseline must have the frames' shape {tuple(x.shape)}, got {tuple(baseline.shape)}."
        )

    total = torch.zeros_like(x)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        point = baseline + alpha * (x - baseline)
        total = total + _input_gradients(model, point, output_index, target)
    attributions = (x - baseline) * total / steps  # (..., C, H, W)
    maps = attributions.sum(dim=-3)  # (..., H, W)
    if not absolute:
        return to_numpy(maps)
    return _finish(maps.abs(), normalize)


def _finish(maps: Tensor, normalize: bool) -> np.ndarray:
    lead = maps.shape[:-2]
    maps = maps.detach()
    if normalize:
        maps = _normalize(maps.reshape(-1, *maps.shape[-2:])).reshape(maps.shape)
    return to_numpy(maps).reshape(*lead, *maps.shape[-2:])


# ---------------------------------------------------------------------- robustness


@dataclass
class AttentionRobustness:
    """How much an attention map changes when noise is added to the frames.

    Attributes:
        ssim: the SSIM between the clean and the noisy frame's map, one per frame, (B,) or
            (B, T).
        mean: the SSIM averaged over all frames.
        clean: the maps of the clean frames.
        noisy: the maps of the noisy frames.
        noise_std: the standard deviation of the added noise, in the frames' units.
    """

    ssim: np.ndarray
    mean: float
    clean: np.ndarray
    noisy: np.ndarray
    noise_std: float


def attention_robustness(
    attention: Callable[[Tensor], np.ndarray],
    frames: np.ndarray | Tensor,
    *,
    noise_std: float = 0.1,
    seed: int = 0,
    data_range: float = 1.0,
) -> AttentionRobustness:
    """Compare the attention maps of clean and noisy frames by their SSIM, averaged over frames.

    Each frame gets Gaussian noise of standard deviation ``noise_std`` (not clipped). The
    attention maps of the clean and the noisy frame are compared with the SSIM
    (``torchlnn.analysis.ssim``), and the SSIM is averaged over all frames. A value near 1
    means the network looks at the same places under noise. Lechner et al. (Nature Machine
    Intelligence 2, 2020) compare the robustness of driving networks' attention this way.

    Args:
        attention: a function from frames to maps normalised to [0, 1], for example
            ``lambda f: visual_backprop(policy.conv_head, f)``.
        frames: (B, C, H, W) or (B, T, C, H, W), float.
        noise_std: the noise's standard deviation, in the frames' units.
        seed: seed of the noise.
        data_range: the maps' range, for the SSIM (1.0 for normalised maps).
    """
    x = frames if isinstance(frames, Tensor) else torch.as_tensor(np.asarray(frames))
    as_frames(x)
    if not noise_std >= 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}.")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * noise_std

    clean = np.asarray(attention(x), dtype=np.float64)
    noisy = np.asarray(attention(x + noise), dtype=np.float64)
    expected = tuple(x.shape[:-3]) + tuple(x.shape[-2:])
    if clean.shape != expected or noisy.shape != expected:
        raise ValueError(
            f"attention must return one map per frame, shape {expected}; got {clean.shape}."
        )
    scores = np.asarray(ssim(clean, noisy, data_range=data_range))
    return AttentionRobustness(
        ssim=scores, mean=float(scores.mean()), clean=clean, noisy=noisy, noise_std=float(noise_std)
    )
