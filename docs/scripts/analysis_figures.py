"""Train three tiny lane-following policies and draw the figures of docs/analysis.md.

The task is a toy version of lane keeping: 24 x 48 camera frames of a road whose curvature and
lateral offset drift smoothly, with distracting objects in the grass. The target steering is
``1.5 * curvature - 0.6 * offset``, so a policy must find the lane lines. Three policies share
the same convolutional head and differ in their recurrent part: an LTC with a 14-neuron NCP, a
CfC with the same wiring, and an LSTM with 16 units. Everything is seeded; on 2 CPU cores the
whole script takes a few minutes (the measured time is in summary.json).

Usage::

    python docs/scripts/analysis_figures.py [--out docs/img/analysis] [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import torchlnn
from torchlnn import analysis, plotting
from torchlnn.wirings import NCP

HEIGHT, WIDTH, HORIZON = 24, 48, 6
STEPS_PER_SEQUENCE = 16


# ---------------------------------------------------------------------- data


def render(offset: np.ndarray, curvature: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one sequence of road frames, float32 (T, 3, H, W) in [0, 1].

    ``offset`` (T,) is the car's lateral offset in lane half-widths (positive: the road lies to
    the left), ``curvature`` (T,) the road's bend in [-1, 1] (positive: bends right).
    """
    steps = len(offset)
    rows = np.arange(HEIGHT, dtype=np.float64)[:, None]  # (H, 1)
    cols = np.arange(WIDTH, dtype=np.float64)[None, :]  # (1, W)
    depth = np.clip((rows - HORIZON + 1) / (HEIGHT - HORIZON), 0.0, 1.0)  # 0 far, 1 near

    frames = np.empty((steps, 3, HEIGHT, WIDTH))
    # Objects in the grass: (row, column) of each, drifting towards the car frame by frame.
    objects = rng.uniform([HORIZON + 1, 0], [HEIGHT - 2, WIDTH], size=(3, 2))
    colours = rng.choice([[0.1, 0.3, 0.1], [0.8, 0.2, 0.2], [0.9, 0.8, 0.3]], size=3)
    for t in range(steps):
        centre = WIDTH / 2 - 9.0 * offset[t] * depth + 22.0 * curvature[t] * (1 - depth) ** 2
        half = 3.0 + 15.0 * depth  # the lane widens towards the car
        on_road = np.abs(cols - centre) < half
        image = np.where(on_road, 0.33, 0.0)[None].repeat(3, axis=0)  # (3, H, W)
        grass = ~on_road
        for channel, value in enumerate((0.25, 0.55, 0.2)):
            image[channel][grass] = value
        for line in (centre - half, centre + half):
            intensity = np.exp(-((cols - line) ** 2) / (2 * 0.7**2)) * (depth > 0)
            image = image * (1 - intensity) + 0.95 * intensity
        for (row, column), colour in zip(objects, colours):
            row = HORIZON + 1 + (row - HORIZON - 1 + 0.6 * t) % (HEIGHT - HORIZON - 2)
            blob = np.exp(-((rows - row) ** 2 + (cols - column) ** 2) / (2 * 1.2**2))
            blob = blob * ~on_road
            image = image * (1 - blob) + np.asarray(colour)[:, None, None] * blob
        image[:, :HORIZON] = np.array([0.55, 0.75, 0.95])[:, None, None]  # sky
        frames[t] = image
    frames += rng.normal(scale=0.03, size=frames.shape)
    return np.clip(frames, 0.0, 1.0).astype(np.float32)


def make_sequences(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return frames (N, T, 3, H, W) and steering targets (N, T, 1)."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(STEPS_PER_SEQUENCE)
    frames, targets = [], []
    for _ in range(count):
        amplitude, period, phase = rng.uniform(0.2, 1.0), rng.uniform(10, 40), rng.uniform(0, 6.3)
        curvature = amplitude * np.sin(2 * np.pi * time_axis / period + phase)
        offset = np.empty(STEPS_PER_SEQUENCE)
        offset[0] = rng.uniform(-0.8, 0.8)
        for t in range(1, STEPS_PER_SEQUENCE):  # mean-reverting drift
            offset[t] = 0.85 * offset[t - 1] + rng.normal(scale=0.15)
        frames.append(render(offset, curvature, rng))
        targets.append(1.5 * curvature - 0.6 * offset)
    inputs = torch.from_numpy(np.stack(frames))
    steering = torch.from_numpy(np.stack(targets)).float().unsqueeze(-1)
    return inputs, steering


# ---------------------------------------------------------------------- models


def wiring() -> NCP:
    """14 neurons: 8 inter, 5 command, 1 motor."""
    return NCP(8, 5, 1, sensory_fanout=4, inter_fanout=3, recurrent_command_synapses=4,
               motor_fanin=4, seed=7)


class LanePolicy(nn.Module):
    """Per-frame conv head (3 layers), 8 features, a recurrent part: steering (B, T, 1)."""

    def __init__(self, kind: str):
        super().__init__()
        self.conv_head = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(12, 4, 3, stride=1, padding=1), nn.ReLU(),
        )
        # Batch normalisation brings the features to the unit scale that the LTC's sensory
        # sigmoids respond to (mu in [0.3, 0.8], sigma in [3, 8] at initialisation). Without it
        # the LTC saw features of about 0.05 and learned only the mean steering.
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 12, 8), nn.BatchNorm1d(8))
        self.kind = kind
        if kind == "ltc":
            self.rnn = torchlnn.LTC(8, wiring())
        elif kind == "cfc":
            self.rnn = torchlnn.CfC(8, wiring())
        else:
            self.rnn = nn.LSTM(8, 16, batch_first=True)
            self.head = nn.Linear(16, 1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        batch, steps = frames.shape[:2]
        flat = frames.reshape(batch * steps, *frames.shape[2:])  # (B * T, 3, H, W)
        return self.features(self.conv_head(flat)).reshape(batch, steps, -1)  # (B, T, 8)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.encode(frames))
        return self.head(output) if self.kind == "lstm" else output


def train(kind: str, frames, targets, steps: int, seed: int) -> LanePolicy:
    torch.manual_seed(seed)
    model = LanePolicy(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(seed)
    try:
        from tqdm import tqdm

        progress = tqdm(range(steps), desc=f"train {kind}", leave=False)
    except ImportError:
        progress = range(steps)
    for _ in progress:
        model.train()
        batch = torch.randint(0, len(frames), (16,), generator=generator)
        loss = nn.functional.mse_loss(model(frames[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return model.eval()


# ---------------------------------------------------------------------- figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/analysis"),
                        help="folder for the figures (default: docs/img/analysis)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per model")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1; on a shared 2-core machine two "
                        "threads made the wired CfC about 200 times slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    train_frames, train_targets = make_sequences(256, args.seed)
    test_frames, test_targets = make_sequences(16, args.seed + 1)
    models = {kind: train(kind, train_frames, train_targets, args.steps, args.seed)
              for kind in ("ltc", "cfc", "lstm")}
    summary: dict = {"seed": args.seed, "training_steps": args.steps, "models": {}}
    with torch.no_grad():
        for kind, model in models.items():
            error = nn.functional.mse_loss(model(test_frames), test_targets).item()
            summary["models"][kind] = {"test_mse": error}
    print(json.dumps(summary["models"], indent=1))

    ltc = models["ltc"]
    out = args.out
    plotting.plot_wiring(ltc.rnn, path=out / "wiring_ltc.png",
                         title="LTC policy after training: 8 features -> NCP(8, 5, 1)")
    plotting.plot_wiring(models["cfc"].rnn, include_sensory=False, path=out / "wiring_cfc.png")

    activity = analysis.record_activity(ltc, test_frames)
    plotting.plot_activity(activity, sample=0, targets=test_targets, output_names=["steering"],
                           path=out / "activity.png")
    pcas = {}
    for kind, model in models.items():
        pca = analysis.activity_pca(analysis.record_activity(model, test_frames))
        pcas[{"ltc": "LTC (NCP, 14)", "cfc": "CfC (NCP, 14)", "lstm": "LSTM (16)"}[kind]] = pca
        summary["models"][kind]["pc1_variance"] = float(pca.explained_variance_ratio[0])
    plotting.plot_pca(pcas["LTC (NCP, 14)"], path=out / "pca_ltc.png",
                      title="LTC policy: principal components of the 14 neurons")
    plotting.plot_pca_comparison(pcas, components=4, path=out / "pca_comparison.png")

    correlation = analysis.neuron_output_correlation(activity, test_targets)
    plotting.plot_correlation(correlation, activity.neuron_types, path=out / "correlation.png",
                              title="correlation of each neuron with the target steering")

    tau = analysis.time_constants(ltc, test_frames)
    plotting.plot_time_constants(tau, activity.neuron_types, path=out / "time_constants.png")

    estimate = analysis.lipschitz_estimate(ltc, test_frames)
    bound = analysis.ltc_lipschitz_bound(ltc)
    plotting.plot_lipschitz(activity.neuron_types, estimate=estimate, bound=bound,
                            path=out / "lipschitz.png")
    features = ltc.encode(test_frames).detach()
    sensitivity = analysis.input_sensitivity(ltc.rnn, features)
    plotting.plot_input_sensitivity(sensitivity, feature_names=[f"f{k}" for k in range(8)],
                                    path=out / "input_sensitivity.png")

    sequence = test_frames[:1]  # (1, T, 3, H, W)
    maps = {
        "VisualBackProp": analysis.visual_backprop(ltc.conv_head, sequence)[0],
        "SmoothGrad": analysis.smoothgrad(ltc, sequence, samples=16, seed=args.seed)[0],
    }
    outputs = ltc(sequence)[0, :, 0].detach().numpy()
    plotting.plot_attention(sequence[0], maps, columns=5, outputs=outputs,
                            path=out / "attention.png")
    plotting.write_attention_animation(sequence[0], maps, out / "attention.gif",
                                       outputs=outputs, fps=4, min_height=96)

    robustness = {}
    for kind, model in models.items():
        robustness[kind] = {}
        for noise in (0.05, 0.1, 0.2):
            result = analysis.attention_robustness(
                lambda x, m=model: analysis.visual_backprop(m.conv_head, x),
                test_frames, noise_std=noise, seed=args.seed,
            )
            robustness[kind][str(noise)] = result.mean
    summary["visualbackprop_ssim"] = robustness
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["torch"] = torch.__version__
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
