"""Take a trained lane-keeping policy to ONNX and to C, and check every form on real frames.

The policy is a ``policy.pt`` written by ``torchlnn lane-keeping`` (in
``runs/lane-keeping/<timestamp>/models/ncp-ltc/``): a convolutional head followed by the
19-neuron NCP as an LTC. This script writes

* ``<out>/lane_policy.onnx``: one control step with the conv head inside, camera frame in,
  steering out: ``x`` (B, 3, H, W), ``state`` (B, 19), ``dt`` (B, 1) -> ``output`` (B, 1),
  ``new_state`` (B, 19);
* ``<out>/controller.pt``: the liquid controller alone, saved with ``torchlnn.save`` for
  ``torchlnn export``;
* ``<out>/firmware/lane_policy.c`` and ``.h``: the liquid controller's step in C99. The conv
  head stays outside the C file, so a microcontroller gets the 32 features from elsewhere.

It then drives one simulator episode with the expert, feeds the camera frames to every form
and prints the largest difference from the whole-sequence PyTorch call, and the mean time of
one step at batch 1. Outputs are in the policy's training unit; multiply by
``policy.curvature_scale`` for the curvature in 1/m.

    python examples/deploy_lane_policy.py runs/lane-keeping/<timestamp>/models/ncp-ltc/policy.pt
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import torchlnn
import torchlnn.driving  # registers torchlnn/LaneKeeping-v0
from torchlnn.driving import PurePursuitExpert
from torchlnn.driving.lane_keeping import load_policy
from torchlnn.export import StreamingController, to_c, to_onnx, write_c_runner


def expert_frames(steps: int, seed: int) -> torch.Tensor:
    """Return the camera frames of an expert drive, (1, T, 3, H, W) in [0, 1]."""
    env = gym.make("torchlnn/LaneKeeping-v0", render_mode="rgb_array")
    expert = PurePursuitExpert()
    frame, info = env.reset(seed=seed)
    frames = []
    for _ in range(steps):
        frames.append(torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0)  # (3, H, W)
        action = np.array([expert(frame, info)], dtype=np.float32)
        frame, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return torch.stack(frames)[None]  # (T, 3, H, W) -> (1, T, 3, H, W)


def mean_microseconds(step, steps: int) -> float:
    """Return the mean time of ``step(t)`` over ``steps`` calls, in microseconds."""
    start = time.perf_counter()
    for t in range(steps):
        step(t)
    return (time.perf_counter() - start) / steps * 1e6


def run_c(folder: Path, features: np.ndarray, dt: float) -> np.ndarray | None:
    """Compile the C step with its runner and return its outputs (T,), or None without gcc."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return None
    binary = folder / "lane_policy_runner"
    sources = [str(folder / "lane_policy.c"), str(folder / "lane_policy_runner.c")]
    subprocess.run([compiler, "-std=c99", "-O2", *sources, "-lm", "-o", str(binary)], check=True)

    steps = features.shape[0]
    records = np.concatenate([np.full((steps, 1), dt, np.float32), features], axis=1)
    (folder / "input.bin").write_bytes(np.int32(steps).tobytes() + records.tobytes())
    subprocess.run(
        [str(binary), "run", str(folder / "input.bin"), str(folder / "output.bin")], check=True
    )
    return np.fromfile(folder / "output.bin", dtype=np.float32)[:steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=Path, help="policy.pt of an ncp-ltc lane-keeping model")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("lane_policy_export"),
        help="folder for the ONNX file, the saved controller and the C files",
    )
    parser.add_argument("--steps", type=int, default=200, help="frames of the check episode")
    parser.add_argument("--seed", type=int, default=1000, help="road seed of the check episode")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a batch-1 controller runs best on one thread

    policy = load_policy(str(args.policy))
    if policy.kind != "ncp-ltc":
        raise SystemExit(
            f"{args.policy} is a {policy.kind!r} policy, but this script exports ncp-ltc "
            f"policies: pass models/ncp-ltc/policy.pt of a lane-keeping run."
        )
    (args.out / "firmware").mkdir(parents=True, exist_ok=True)
    frame_shape = (3, *policy.head.frame_size)
    onnx_path = to_onnx(
        policy.controller,
        args.out / "lane_policy.onnx",
        form="step",
        encoder=policy.head,
        observation_shape=frame_shape,
    )
    torchlnn.save(policy.controller, args.out / "controller.pt")
    written = to_c(policy.controller, args.out / "firmware", name="lane_policy")
    write_c_runner(written)

    frames = expert_frames(args.steps, args.seed)  # (1, T, 3, H, W)
    steps = frames.shape[1]
    with torch.no_grad():
        features = policy.head(frames)  # (1, T, 32)
        whole, _ = policy.controller(features)  # (1, T, 1)
    whole = whole.reshape(-1).numpy()

    controller = StreamingController(policy.controller, encoder=policy.head)
    streamed = np.array([controller.step(frames[:, t], dt=1.0).item() for t in range(steps)])

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_path), options)
    state = np.zeros((1, 19), np.float32)
    unit_dt = np.ones((1, 1), np.float32)
    onnx_outputs = []
    for t in range(steps):
        output, state = session.run(
            None, {"x": frames[:, t].numpy(), "state": state, "dt": unit_dt}
        )
        onnx_outputs.append(output.item())
    c_outputs = run_c(args.out / "firmware", features[0].numpy(), dt=1.0)

    controller.reset()
    stream_us = mean_microseconds(lambda t: controller.step(frames[:, t % steps], dt=1.0), 100)
    onnx_us = mean_microseconds(
        lambda t: session.run(
            None, {"x": frames[:, t % steps].numpy(), "state": state, "dt": unit_dt}
        ),
        100,
    )

    print(
        f"{steps} frames of road seed {args.seed}; outputs range "
        f"[{whole.min():.4f}, {whole.max():.4f}] (times {float(policy.curvature_scale):.5f} "
        f"for 1/m)"
    )
    print(
        f"streaming, conv head inside:  max difference {np.abs(streamed - whole).max():.2e}, "
        f"{stream_us:.0f} us per step"
    )
    print(
        f"ONNX Runtime, conv head inside: max difference "
        f"{np.abs(np.array(onnx_outputs) - whole).max():.2e}, {onnx_us:.0f} us per step"
    )
    if c_outputs is None:
        print("C controller: not compiled (no gcc or cc on PATH)")
    else:
        print(
            f"C controller on the head's features: max difference "
            f"{np.abs(c_outputs - whole).max():.2e}"
        )
    print(
        f"wrote {onnx_path} ({onnx_path.stat().st_size // 1024} KB), "
        f"{args.out / 'controller.pt'}, {written.source} and {written.header} "
        f"({written.const_bytes} bytes of constants, {written.state_bytes} bytes of state)"
    )


if __name__ == "__main__":
    main()
