"""Inspect trained lane-keeping policies: attention, its robustness, activity and wiring.

For each trained policy, on frames of the held-out test episodes:

* **attention**: VisualBackProp maps of the conv head on clean frames and on the same frames
  with Gaussian pixel noise of the smallest evaluated variance, and the mean SSIM between the
  two (1 means the policy looks at the same places under noise);
* **live channels**: per conv layer, the fraction of channels that are positive somewhere on
  those frames (a layer without any leaves the policy blind);
* **activity**: every recurrent neuron's state while the policy watches a test episode, the
  share of variance on the first principal component, and (for NCP policies) the neuron
  traces beside the expert's and the policy's curvature;
* **wiring**: the trained NCP's diagram, line width by learned weight.

Figures are written to ``figures/`` of the run folder; the numbers are returned for the report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchlnn.driving.dataset import DrivingWindows, frames_to_tensor

RECURRENT_KINDS = ("ncp-ltc", "ncp-cfc", "cfc", "lstm")


def test_frames(data: dict[str, Any], count: int, sequence_steps: int) -> dict[str, Any]:
    """Return attention frames spread over the test episodes, and one test sequence.

    Returns a dict with ``frames`` (S, 3, H, W), ``sequence`` (1, T, 3, H, W) and ``labels``
    (1, T): the first ``sequence_steps`` frames of the first test episode and its expert
    curvature.
    """
    windows = DrivingWindows(data["data_dir"], window=1, episodes=data["split"]["test"])
    episodes = [windows.episode_arrays(p) for p in range(len(windows.episodes))]
    per_episode = max(1, math.ceil(count / len(episodes)))
    picked = []
    for frames, _ in episodes:
        positions = np.linspace(0, len(frames) - 1, per_episode).round().astype(int)
        picked.extend(frames[positions])
    attention = frames_to_tensor(np.stack(picked[:count]))  # (S, 3, H, W)
    frames, labels = episodes[0]
    steps = min(sequence_steps, len(frames))
    sequence = frames_to_tensor(frames[:steps])[None]  # (1, T, 3, H, W)
    return {"frames": attention, "sequence": sequence, "labels": labels[None, :steps]}


def analyse_policies(
    folder: Path, config: Any, data: dict[str, Any], trained: dict[str, Any]
) -> dict[str, Any]:
    """Analyse every trained policy; write figures to ``folder`` and return the numbers."""
    from torchlnn.analysis import (
        activity_pca,
        attention_robustness,
        count_parameters,
        live_channels,
        record_activity,
        visual_backprop,
    )
    from torchlnn.driving.lane_keeping import load_policy
    from torchlnn.plotting import (
        plot_activity,
        plot_attention,
        plot_pca_comparison,
        plot_wiring,
        write_attention_animation,
    )

    folder.mkdir(parents=True, exist_ok=True)
    samples = test_frames(data, config.attention_frames, sequence_steps=300)
    noise_std = math.sqrt(min(config.noise_variances))
    results: dict[str, Any] = {"noise_std": noise_std, "models": {}}
    pca_results = {}

    for kind, entry in trained.items():
        policy = load_policy(entry["policy_file"])
        convs = policy.head.convs
        summary: dict[str, Any] = {
            "effective_parameters": count_parameters(policy),
            "perception_parameters": count_parameters(policy.head),
        }
        summary["control_parameters"] = (
            summary["effective_parameters"] - summary["perception_parameters"]
        )

        # Attention and its robustness to pixel noise.
        robustness = attention_robustness(
            lambda frames, convs=convs: visual_backprop(convs, frames),
            samples["frames"],
            noise_std=noise_std,
            seed=config.seed,
        )
        summary["attention_ssim"] = robustness.mean
        figure = folder / f"attention-{kind}.png"
        shown = min(6, len(samples["frames"]))
        plot_attention(
            samples["frames"][:shown],
            {"clean": robustness.clean[:shown], f"noise var {min(config.noise_variances):g}":
             robustness.noisy[:shown]},
            columns=shown,
            path=figure,
        )
        summary["attention_figure"] = figure.name

        # A conv layer whose channels all died leaves the output blind to the camera.
        summary["live_channels"] = live_channels(convs, samples["frames"]).tolist()
        summary["conv_channels"] = [
            layer.out_channels for layer in convs if isinstance(layer, torch.nn.Conv2d)
        ]

        # Activity of the recurrent neurons while watching a test episode.
        if kind in RECURRENT_KINDS:
            with torch.no_grad():
                activity = record_activity(policy, samples["sequence"])
            pca = activity_pca(activity)
            pca_results[kind] = pca
            summary["pc1_variance"] = float(pca.explained_variance_ratio[0])
            summary["recurrent_neurons"] = int(activity.states.shape[-1])
            if kind.startswith("ncp"):
                traces = folder / f"traces-{kind}.png"
                plot_activity(activity, targets=samples["labels"], path=traces)
                summary["traces_figure"] = traces.name
                wiring = folder / f"wiring-{kind}.png"
                plot_wiring(policy.controller, weights=True, labels=False, path=wiring)
                summary["wiring_figure"] = wiring.name
                summary["synapses"] = int(policy.controller.wiring.synapse_count)
                summary["sensory_synapses"] = int(policy.controller.wiring.sensory_synapse_count)
        if kind == "ncp-ltc":
            steps = samples["sequence"][0, :90]  # (T, 3, H, W)
            with torch.no_grad():
                curvature, _ = policy(steps[None])
            animation = folder / "attention-ncp-ltc.gif"
            write_attention_animation(
                steps, visual_backprop(convs, steps), animation,
                outputs=curvature[0].numpy(),
            )
            summary["attention_animation"] = animation.name
        results["models"][kind] = summary

    if pca_results:
        comparison = folder / "pca-comparison.png"
        plot_pca_comparison(pca_results, path=comparison)
        results["pca_figure"] = comparison.name
    return results
