"""Frames per second of the lane-keeping simulator on one CPU core.

Measures, at the configured resolution (78 x 200 by default):

- ``render_and_step``: ``env.step`` (vehicle step, road projection, ground truth and the
  rendered camera frame), replaying commands recorded from the expert so that the car stays
  on the road;
- ``expert_loop``: the same with the expert computing each command, as in data collection;
- ``render_only``: the renderer alone, drawing the camera frame of the current pose.

Each figure is the best of ``--repeats`` timed runs of ``--steps`` steps after a warm-up. The
process is pinned to one core and numerical libraries to one thread. Two clocks are used:
wall-clock time, and the CPU time of this process, which is what a dedicated core delivers
when other programs share the machine (the load average is recorded with the result). The
result is printed and written to ``benchmarks/results/sim_speed.json`` with the machine it
ran on.

Run: ``python benchmarks/sim_speed.py`` (add ``--carracing`` to time the CarRacing adapter too).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from torchlnn._io import write_json  # noqa: E402
from torchlnn.driving import PurePursuitExpert, make_env  # noqa: E402


def _best_rates(runs: dict, steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Best steps per second, by wall clock and by CPU time, of each measurement.

    ``runs[name]`` is a pair ``(prepare, run)``: ``prepare()`` is not timed, then
    ``run(steps)`` is. The measurements take turns within each repeat, so that all of them
    meet the same changes in the load of a shared machine.
    """
    best = {name: {"wall_clock": 0.0, "cpu_time": 0.0} for name in runs}
    for _ in range(repeats):
        for name, (prepare, run) in runs.items():
            prepare()
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            run(steps)
            wall = steps / (time.perf_counter() - start_wall)
            cpu = steps / max(time.process_time() - start_cpu, 1e-9)
            best[name]["wall_clock"] = max(best[name]["wall_clock"], wall)
            best[name]["cpu_time"] = max(best[name]["cpu_time"], cpu)
    return best


def _expert_runs(env, seed: int) -> dict:
    """Measurements on one road driven by the expert.

    ``render_and_step`` replays the expert's recorded commands, so the car follows the road
    without the expert's cost being timed. ``expert_loop`` computes them as it goes, as data
    collection does.
    """
    expert = PurePursuitExpert()
    state: dict = {}

    def drive(count: int) -> None:
        observation, info = state["start"]
        commands = []
        for _ in range(count):
            commands.append(np.array([expert(observation, info)], dtype=np.float32))
            observation, _, _, _, info = env.step(commands[-1])
        state["commands"] = commands

    def prepare() -> None:
        state["start"] = env.reset(seed=seed)

    def replay(count: int) -> None:
        for command in state["commands"][:count]:
            env.step(command)

    def render_only(count: int) -> None:
        for _ in range(count):
            env.unwrapped._render_frame()  # the environment's own call of the renderer

    return {"drive": drive, "prepare": prepare, "replay": replay, "render_only": render_only}


def measure_sim(
    height: int, width: int, steps: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Time the simulator; return frames per second by measurement and clock."""
    env = make_env("sim", image_height=height, image_width=width, episode_steps=steps + 10,
                   terminate_on_departure=False)
    runs = _expert_runs(env, seed=0)
    runs["prepare"]()
    runs["drive"](steps)  # records the commands and warms up
    rates = _best_rates({
        "render_and_step": (runs["prepare"], runs["replay"]),
        "expert_loop": (runs["prepare"], runs["drive"]),
        "render_only": (runs["prepare"], runs["render_only"]),
    }, steps, repeats)
    env.close()
    return rates


def measure_carracing(steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Time the CarRacing adapter with its expert."""
    env = make_env("carracing", episode_steps=steps + 10, terminate_on_departure=False)
    runs = _expert_runs(env, seed=0)
    rates = _best_rates({"expert_loop": (runs["prepare"], runs["drive"])}, steps, repeats)
    env.close()
    return rates


def _machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return {
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "commit": commit,
        "load_average_1min": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=78, help="frame height (default: 78)")
    parser.add_argument("--width", type=int, default=200, help="frame width (default: 200)")
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    parser.add_argument("--carracing", action="store_true", help="also time CarRacing")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "sim_speed.json",
                        help="JSON record to write")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    record = {
        "benchmark": "sim_speed",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resolution": [args.height, args.width],
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": _machine(),
        "sim_frames_per_second": measure_sim(args.height, args.width, args.steps,
                                             args.repeats),
    }
    if args.carracing:
        record["carracing_frames_per_second"] = measure_carracing(args.steps // 4,
                                                                  args.repeats)

    print(f"load average (1 min): {record['machine']['load_average_1min']}")
    for name, rates in record.items():
        if name.endswith("frames_per_second"):
            for kind, clocks in rates.items():
                print(f"{name.split('_frames')[0]:10s} {kind:16s} "
                      f"{clocks['wall_clock']:7.0f} frames/s wall clock, "
                      f"{clocks['cpu_time']:7.0f} frames/s of CPU time")
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
