"""``torchlnn plot``: figures of a saved model, from the command line.

Sub-commands:

- ``wiring``: the wiring diagram with learned polarities and weights.
- ``activity``: neuron traces, PCA, correlation with the output, time constants (LTC) and
  sensitivities of a model run on input data. ``summary.json`` stores the numbers.
- ``attention``: VisualBackProp and gradient saliency over camera frames, as a PNG grid or an
  animated GIF, with the SSIM robustness to noise when ``--noise`` is given.

A model (``MODEL``) is one of:

- a file written by ``torchlnn.save`` (an LTC or CfC layer);
- ``package.module:NAME`` where NAME is an ``nn.Module`` or a function returning one, with
  ``--weights FILE`` holding its state dict (``torch.save(model.state_dict(), FILE)``);
- a whole module saved with ``torch.save(model, FILE)``, only with ``--trust-pickle``, because
  loading it runs code stored in the file.

Data files: ``.npy`` (one array), ``.npz`` (arrays by name) or ``.pt`` (a tensor, or a dict of
tensors by name). In an ``.npz`` or ``.pt`` dict, ``--inputs`` reads the key "inputs" and also
picks up "timespans", "targets" and "mask" when present; ``--frames`` reads "frames".
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["register"]

METHODS = ("visualbackprop", "smoothgrad", "integrated-gradients")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "plot",
        help="draw the wiring, activity or attention of a saved model",
        description="Draw the wiring, activity or attention of a saved model. See "
        "docs/analysis.md for the file formats.",
    )
    commands = parser.add_subparsers(dest="plot_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    wiring = commands.add_parser(
        "wiring", help="wiring diagram with learned weights",
        description="Draw the wiring diagram of an LTC or wired CfC, with the learned polarity "
        "and weight of each synapse.",
    )
    _add_model_arguments(wiring)
    wiring.add_argument("-o", "--output", type=Path, required=True,
                        help="image file to write (.png, .svg or .pdf)")
    wiring.add_argument("--no-weights", action="store_true",
                        help="draw every synapse with the same width")
    wiring.add_argument("--no-sensory", action="store_true",
                        help="leave out the sensory neurons and their synapses")
    wiring.add_argument("--order", choices=["barycenter", "index"], default="barycenter",
                        help="order of the neurons in each column (default: barycenter)")
    wiring.set_defaults(func=_wiring)

    activity = commands.add_parser(
        "activity", help="neuron traces, PCA, correlation, time constants, sensitivity",
        description="Run the model on input data and write activity.png, pca.png, "
        "correlation.png, sensitivity.png, lipschitz.png, time_constants.png (LTC only) and "
        "summary.json into the output folder.",
    )
    _add_model_arguments(activity)
    activity.add_argument("--inputs", type=Path, required=True,
                          help="input sequences, (B, T, F) or (T, F)")
    activity.add_argument("--timespans", type=Path, default=None,
                          help="elapsed time of each step, (B, T) or (T,)")
    activity.add_argument("--targets", type=Path, default=None,
                          help="reference outputs drawn beside the model's, (B, T) or (B, T, O)")
    activity.add_argument("-o", "--output-dir", type=Path, required=True,
                          help="folder for the figures and summary.json (created if missing)")
    activity.add_argument("--sample", type=int, default=0,
                          help="sample whose traces are drawn (default: 0)")
    activity.set_defaults(func=_activity)

    attention = commands.add_parser(
        "attention", help="VisualBackProp and gradient saliency over camera frames",
        description="Compute attention maps of an image model over a sequence of frames and "
        "write them as a PNG grid or an animated GIF (or MP4).",
    )
    _add_model_arguments(attention)
    attention.add_argument("--frames", type=Path, required=True,
                           help="one sequence of frames, (T, C, H, W) or (T, H, W, C); float "
                           "in [0, 1] or uint8")
    attention.add_argument("--extractor", default=None, metavar="ATTRIBUTE",
                           help="dotted attribute of the model that is its convolutional "
                           "feature extractor, e.g. conv_head (default: the model itself)")
    attention.add_argument("--method", choices=METHODS + ("all",), default="visualbackprop",
                           help="attention method (default: visualbackprop)")
    attention.add_argument("--per-frame", action="store_true",
                           help="the model takes single frames (B, C, H, W), not sequences")
    attention.add_argument("--noise", type=float, default=None, metavar="STD",
                           help="also report the SSIM between the maps of clean frames and of "
                           "frames with Gaussian noise of this standard deviation")
    attention.add_argument("--samples", type=int, default=16,
                           help="noisy copies averaged by SmoothGrad (default: 16)")
    attention.add_argument("--steps", type=int, default=32,
                           help="points on the integrated-gradients path (default: 32)")
    attention.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    attention.add_argument("-o", "--output", type=Path, required=True,
                           help="file to write: .png (grid), .gif or .mp4 (animation)")
    attention.add_argument("--fps", type=float, default=10.0,
                           help="frames per second of an animation (default: 10)")
    attention.set_defaults(func=_attention)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="file written by torchlnn.save, or package.module:NAME")
    parser.add_argument("--weights", type=Path, default=None,
                        help="state dict to load into a MODULE:NAME model")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow MODEL to be a whole module saved with torch.save(model); "
                        "loading it runs code from the file, so use it only for your own files")


# ---------------------------------------------------------------------- loading


def load_model(spec: str, weights: Path | None = None, trust_pickle: bool = False):
    """Return the model named by ``spec`` in eval mode (see the module docstring)."""
    import torch
    from torch import nn

    import torchlnn

    if os.path.isfile(spec):
        if weights is not None:
            raise ValueError("--weights applies to a MODULE:NAME model, not to a model file.")
        try:
            payload = torch.load(spec, map_location="cpu", weights_only=True)
        except Exception as error:  # a pickled module is rejected by the weights-only loader
            if not trust_pickle:
                raise ValueError(
                    f"{spec!r} is not a file written by torchlnn.save, and loading it as a "
                    f"whole pickled module would run code from it. If you saved it yourself "
                    f"with torch.save(model), add --trust-pickle. ({type(error).__name__})"
                ) from error
            payload = torch.load(spec, map_location="cpu", weights_only=False)
        if isinstance(payload, dict) and payload.get("format") == "torchlnn-layer":
            model = torchlnn.load(spec, map_location="cpu")
        elif isinstance(payload, nn.Module):
            model = payload
        else:
            raise ValueError(
                f"{spec!r} contains a {type(payload).__name__}, not a model. A state dict needs "
                f"the code that builds the model: pass package.module:NAME --weights {spec}."
            )
        return model.eval()

    if ":" not in spec:
        raise FileNotFoundError(
            f"MODEL {spec!r} is neither an existing file nor of the form package.module:NAME."
        )
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"could not import {module_name!r} for MODEL {spec!r}: {error}") from error
    if not hasattr(module, attribute):
        raise ValueError(f"{module_name!r} has no attribute {attribute!r} (MODEL {spec!r}).")
    model = getattr(module, attribute)
    if not isinstance(model, nn.Module):
        model = model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"MODEL {spec!r} gave a {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        model.load_state_dict(state)
    return model.eval()


def load_arrays(path: Path, key: str) -> dict[str, Any]:
    """Read a data file and return its arrays by name, as float tensors (mask as bool).

    A single array (``.npy``, or a tensor in a ``.pt`` file) is returned under ``key``.
    """
    import numpy as np
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} not found.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arrays = {key: np.load(path, allow_pickle=False)}
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    elif suffix in (".pt", ".pth"):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        arrays = payload if isinstance(payload, dict) else {key: payload}
    else:
        raise ValueError(f"data file {str(path)!r}: expected .npy, .npz or .pt, got {suffix!r}.")
    if key not in arrays:
        raise ValueError(
            f"data file {str(path)!r} has no array named {key!r}; it has {sorted(arrays)}."
        )
    tensors = {}
    for name, value in arrays.items():
        tensor = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
        tensors[name] = tensor if name == "mask" or tensor.dtype == torch.uint8 else tensor.float()
    return tensors


# ---------------------------------------------------------------------- commands


def _wiring(args: argparse.Namespace) -> int:
    from torchlnn.plotting import plot_wiring

    model = load_model(args.model, args.weights, args.trust_pickle)
    plot_wiring(model, weights=not args.no_weights, include_sensory=not args.no_sensory,
                order=args.order, path=args.output)
    print(f"wrote {args.output}")
    return 0


def _activity(args: argparse.Namespace) -> int:
    import numpy as np

    from torchlnn import analysis, plotting
    from torchlnn.analysis._recording import find_recurrent_layer
    from torchlnn.layers import LTC

    model = load_model(args.model, args.weights, args.trust_pickle)
    data = load_arrays(args.inputs, "inputs")
    inputs = data["inputs"]
    timespans = data.get("timespans")
    targets = data.get("targets")
    mask = data.get("mask")
    if args.timespans is not None:
        timespans = load_arrays(args.timespans, "timespans")["timespans"]
    if args.targets is not None:
        targets = load_arrays(args.targets, "targets")["targets"]
    if inputs.dim() == 2:  # one sequence (T, F) -> (1, T, F)
        inputs = inputs.unsqueeze(0)
        timespans = None if timespans is None else timespans.reshape(1, -1)
        targets = None if targets is None else targets.unsqueeze(0)
        mask = None if mask is None else mask.reshape(1, -1)
    arguments = {"timespans": timespans, "mask": None if mask is None else mask.bool()}

    args.output_dir.mkdir(parents=True, exist_ok=True)
    out = args.output_dir
    activity = analysis.record_activity(model, inputs, **arguments)
    types = activity.neuron_types
    plotting.plot_activity(activity, sample=args.sample, targets=targets,
                           path=out / "activity.png")
    pca = analysis.activity_pca(activity)
    plotting.plot_pca(pca, sample=args.sample, path=out / "pca.png")
    summary: dict[str, Any] = {
        "layer": activity.layer_name,
        "neurons": len(types),
        "neuron_types": types,
        "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
    }
    if activity.outputs.ndim == 3:
        correlation = analysis.neuron_output_correlation(activity)
        plotting.plot_correlation(correlation, types, path=out / "correlation.png")
        summary["output_correlation"] = np.where(np.isnan(correlation), None,
                                                 correlation).tolist()
        sensitivity = analysis.input_sensitivity(model, inputs, **_given(arguments))
        if sensitivity.ndim == 3:
            plotting.plot_input_sensitivity(sensitivity, sample=args.sample,
                                            path=out / "sensitivity.png")

    layer = find_recurrent_layer(model)
    estimate = bound = None
    if isinstance(layer, LTC):
        tau = analysis.time_constants(model, inputs, **_given(arguments))
        plotting.plot_time_constants(tau, types, sample=args.sample,
                                     path=out / "time_constants.png")
        summary["time_constant_median"] = np.nanmedian(tau, axis=(0, 1)).tolist()
        bound = analysis.ltc_lipschitz_bound(layer)
    if hasattr(layer, "rnn_cell"):
        estimate = analysis.lipschitz_estimate(model, inputs, **_given(arguments))
        summary["lipschitz_input_measured"] = estimate.input.tolist()
    if bound is not None and bound.step_input is not None:
        summary["lipschitz_input_bound"] = bound.step_input.tolist()
    if estimate is not None or bound is not None:
        plotting.plot_lipschitz(types, estimate=estimate, bound=bound, path=out / "lipschitz.png")

    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    ratio = pca.explained_variance_ratio
    print(f"{activity.layer_name}, {len(types)} neurons: PC1 explains {100 * ratio[0]:.1f}% of "
          f"the activity variance, PC1-3 {100 * ratio[:3].sum():.1f}%")
    print(f"wrote the figures and summary.json to {out}")
    return 0


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if value is not None}


def _attention(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from torchlnn import analysis, plotting

    model = load_model(args.model, args.weights, args.trust_pickle)
    extractor = model
    if args.extractor:
        for name in args.extractor.split("."):
            if not hasattr(extractor, name):
                raise ValueError(
                    f"the model has no attribute {args.extractor!r} (missing {name!r})."
                )
            extractor = getattr(extractor, name)

    frames = load_arrays(args.frames, "frames")["frames"]
    if frames.dtype == torch.uint8:
        frames = frames.float() / 255.0
    if frames.dim() == 5 and frames.shape[0] == 1:
        frames = frames[0]
    if frames.dim() != 4:
        raise ValueError(
            f"--frames must hold one sequence (T, C, H, W) or (T, H, W, C), got shape "
            f"{tuple(frames.shape)}."
        )
    if frames.shape[1] not in (1, 3) and frames.shape[-1] in (1, 3):
        frames = frames.permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
    batch = frames if args.per_frame else frames.unsqueeze(0)  # model input

    def maps_of(method: str, x: torch.Tensor) -> np.ndarray:
        if method == "visualbackprop":
            return analysis.visual_backprop(extractor, x)
        if method == "smoothgrad":
            return analysis.smoothgrad(model, x, samples=args.samples, seed=args.seed)
        return analysis.integrated_gradients(model, x, steps=args.steps)

    names = {"visualbackprop": "VisualBackProp", "smoothgrad": "SmoothGrad",
             "integrated-gradients": "Integrated gradients"}
    methods = list(METHODS) if args.method == "all" else [args.method]
    maps = {}
    for method in methods:
        result = maps_of(method, batch)
        maps[names[method]] = result if args.per_frame else result[0]  # (T, H, W)

    outputs = None
    if extractor is not model:  # the whole model: show its output (the first one) per step
        with torch.no_grad():
            result = model(batch)
        output = result[0] if isinstance(result, tuple) else result
        outputs = output.reshape(len(frames), -1)[:, 0].numpy()  # (T,)

    suffix = args.output.suffix.lower()
    if suffix in (".gif", ".mp4"):
        plotting.write_attention_animation(frames, maps, args.output, outputs=outputs,
                                           fps=args.fps)
    else:
        plotting.plot_attention(frames, maps, outputs=outputs, path=args.output)
    print(f"wrote {args.output}")

    if args.noise is not None:
        for method in methods:
            robustness = analysis.attention_robustness(
                lambda x, m=method: maps_of(m, x), batch, noise_std=args.noise, seed=args.seed
            )
            print(f"{names[method]}: mean SSIM between clean and noisy (std {args.noise}) maps "
                  f"= {robustness.mean:.3f}")
    return 0
