"""Render the images of docs/driving.md into docs/img/.

Run from the repository root: ``python docs/driving_images.py``. Every image comes from fixed
seeds, so the output is the same on every run.
"""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from torchlnn.driving import (  # noqa: E402
    ConstantPolicy,
    PurePursuitExpert,
    evaluate,
    frame_to_float,
    make_env,
    parse_perturbation,
)
from torchlnn.driving.images import save_png, upscale  # noqa: E402

OUT = Path(__file__).resolve().parent / "img"


def expert_frames(env_name: str, seed: int, steps: list[int], **settings) -> list[np.ndarray]:
    """Frames seen at the given steps while the expert drives."""
    env = make_env(env_name, episode_steps=max(steps) + 2, **settings)
    expert = PurePursuitExpert()
    observation, info = env.reset(seed=seed)
    frames = []
    for step in range(max(steps) + 1):
        if step in steps:
            frames.append(observation)
        observation, _, _, _, info = env.step(
            np.array([expert(observation, info)], dtype=np.float32))
    env.close()
    return frames


def grid(frames: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    """Tile equally sized frames with a white gap."""
    height, width, _ = frames[0].shape
    rows = -(-len(frames) // columns)
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255,
                    dtype=np.uint8)
    for index, frame in enumerate(frames):
        r, c = divmod(index, columns)
        sheet[r * (height + gap):r * (height + gap) + height,
              c * (width + gap):c * (width + gap) + width] = frame
    return sheet


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    # Simulator frames: six roads, a moment on each.
    frames = []
    for seed, step in [(0, 200), (3, 420), (7, 300), (11, 150), (12, 520), (20, 380)]:
        frames.extend(expert_frames("sim", seed, [step]))
    save_png(OUT / "driving_frames.png", upscale(grid(frames, 2), 2))
    save_png(OUT / "driving_frame_native.png", frames[0])

    # A drive through a bend of 67 m radius: every 30th frame (one second apart).
    save_png(OUT / "driving_sequence.png",
             upscale(grid(expert_frames("sim", 5, list(range(690, 870, 30))), 3), 2))

    # Perturbations of one frame.
    import matplotlib.pyplot as plt

    base = frame_to_float(expert_frames("sim", 7, [300])[0])
    specs = ["none", "noise:0.1", "noise:0.2", "noise:0.3", "brightness:1", "shadow:1",
             "occlusion:1"]
    figure, axes = plt.subplots(4, 2, figsize=(8, 5.6))
    for axis, spec in zip(axes.ravel(), specs + ["camera:1"], strict=True):
        if spec == "camera:1":
            # The camera offset changes the environment: render the same drive from a
            # camera mounted off the car's axis.
            perturbation = parse_perturbation(spec)
            perturbation.reset(np.random.default_rng(1))
            image = frame_to_float(
                expert_frames("sim", 7, [300], mount_left=perturbation.lateral)[0])
        elif spec == "none":
            image = base
        else:
            perturbation = parse_perturbation(spec)
            perturbation.reset(np.random.default_rng(1))
            image = perturbation(base)
        axis.imshow(np.clip(image, 0.0, 1.0))
        axis.set_title(spec, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(OUT / "driving_perturbations.png", dpi=100)
    plt.close(figure)

    # CarRacing through the adapter.
    frames = expert_frames("carracing", 0, [40, 120, 200]) + expert_frames(
        "carracing", 1, [40, 120, 200])
    save_png(OUT / "driving_carracing.png", upscale(grid(frames, 3), 2))

    # Closed-loop evaluation plots: the expert, and a car that never steers.
    expert = evaluate(PurePursuitExpert(), seeds=[1000, 1001], distance=500.0, name="expert",
                      progress=False)
    expert.plot(OUT / "driving_eval_expert.png", max_seeds=2)
    straight = evaluate(ConstantPolicy(0.0), seeds=[1000, 1001], distance=500.0,
                        name="straight", progress=False)
    straight.plot(OUT / "driving_eval_straight.png", max_seeds=2)
    for result in (expert, straight):
        summary = result.summary
        print(f"{result.policy}: {summary['departures_per_km']:.1f} departures/km, "
              f"mean |offset| {summary['mean_abs_offset_m']:.3f} m, in lane "
              f"{summary['in_lane_fraction']:.3f}")
    print(f"wrote images to {OUT}")


if __name__ == "__main__":
    main()
