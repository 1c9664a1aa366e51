"""Closed-loop evaluation harness: drive a policy a fixed distance on fixed seeds and measure it.

Every policy faces the same test: for each seed, the same road (or CarRacing track), the same
perturbation parameters, and the same distance along the road. The policy is called on every
frame (see :mod:`torchlnn.driving.policy` for the interface); its curvature command drives the
car. When the car's body centre leaves its lane, a departure is counted and the car is put
back on the lane centre, as a safety driver would, and the run goes on.

Metrics, per seed and over all seeds (with :math:`e_t` the lateral offset of the body centre
at step :math:`t`, :math:`w` the lane width, :math:`b` the car width and :math:`\\kappa_t` the
commanded curvature):

- ``departures``: number of steps at which :math:`|e_t|` crosses above the departure offset
  (half the lane width by default), i.e. departure events.
- ``departures_per_km``: departures divided by the distance driven along the road.
- ``mean_abs_offset_m``: mean of :math:`|e_t|`.
- ``max_abs_offset_m``: largest :math:`|e_t|`.
- ``in_lane_fraction``: share of steps with the whole car inside its lane,
  :math:`|e_t| + b/2 \\le w/2`.
- ``steering_rate_rms``: root mean square of :math:`(\\kappa_t - \\kappa_{t-1}) / \\Delta t`, in
  1/(m s); lower is smoother.

:meth:`EvaluationResult.save` writes the metrics as JSON and CSV, the traces as a compressed
``.npz`` and a figure of the driven paths (matplotlib is imported only then).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchlnn.driving.perturbations import Perturbation, parse_perturbation
from torchlnn.driving.policy import frame_to_float, policy_info, reset_policy
from torchlnn.driving.registry import make_env

__all__ = ["DEFAULT_SEEDS", "Trace", "EvaluationResult", "compute_metrics", "evaluate"]

DEFAULT_SEEDS = (1000, 1001, 1002, 1003, 1004)
"""Seeds of the standard test: roads that no training run draws by default."""

_PERTURBATION_STREAM = 0x5EED
"""Tag mixed into the seed of each perturbation's generator, apart from the road's seed."""


@dataclass
class Trace:
    """Per-step record of one run. All arrays have shape ``(T,)``."""

    seed: int
    """Seed of the run."""
    progress: np.ndarray
    """Distance driven along the road, in metres."""
    s: np.ndarray
    """Arc length of the car on the road's centreline, in metres."""
    x: np.ndarray
    """East position of the body centre, in metres."""
    y: np.ndarray
    """North position of the body centre, in metres."""
    lateral_offset: np.ndarray
    """Lateral offset from the lane centre, in metres, positive left (after the step)."""
    command: np.ndarray
    """Curvature commanded by the policy, in 1/m."""
    road_curvature: np.ndarray
    """Road curvature at the car, in 1/m."""
    departure: np.ndarray
    """Whether a departure was counted at this step (the car was then put back)."""
    centreline: Any = field(default=None, repr=False)
    """The road's centreline, for plots."""


def compute_metrics(
    lateral_offset: np.ndarray,
    command: np.ndarray,
    distance: float,
    dt: float,
    lane_width: float,
    vehicle_width: float,
    departure_offset: float | None = None,
) -> dict[str, float]:
    """Compute the metrics of the module docstring from one run's arrays.

    Arguments:
        lateral_offset: ``(T,)`` lateral offset at each step, in metres.
        command: ``(T,)`` commanded curvature at each step, in 1/m.
        distance: distance driven along the road, in metres.
        dt: duration of a step, in seconds.
        lane_width: lane width, in metres.
        vehicle_width: car width, in metres.
        departure_offset: offset beyond which the car has left its lane; ``None`` means half
            the lane width.
    """
    offset = np.abs(np.asarray(lateral_offset, dtype=np.float64))
    command = np.asarray(command, dtype=np.float64)
    if offset.ndim != 1 or command.shape != offset.shape or len(offset) == 0:
        raise ValueError(
            f"lateral_offset and command must be non-empty 1-D arrays of equal length, got "
            f"shapes {np.shape(lateral_offset)} and {np.shape(command)}"
        )
    if distance <= 0 or dt <= 0:
        raise ValueError(f"distance and dt must be positive, got {distance} and {dt}")
    threshold = 0.5 * lane_width if departure_offset is None else departure_offset

    # A departure is a step where the offset crosses above the threshold.
    outside = offset > threshold
    departures = int(outside[0]) + int(np.count_nonzero(outside[1:] & ~outside[:-1]))

    in_lane = offset + 0.5 * vehicle_width <= 0.5 * lane_width
    rate = np.diff(command) / dt
    return {
        "distance_m": float(distance),
        "steps": int(len(offset)),
        "departures": departures,
        "departures_per_km": departures / (distance / 1000.0),
        "mean_abs_offset_m": float(offset.mean()),
        "max_abs_offset_m": float(offset.max()),
        "in_lane_fraction": float(in_lane.mean()),
        "steering_rate_rms": float(np.sqrt(np.mean(rate**2))) if len(rate) else 0.0,
    }


@dataclass
class EvaluationResult:
    """Metrics and traces of one policy under one set of perturbations."""

    policy: str
    """Name of the policy."""
    env: str
    """``"sim"`` or ``"carracing"``."""
    perturbations: list[str]
    """Perturbations as ``name:strength`` strings."""
    distance: float
    """Distance per seed, in metres."""
    per_seed: list[dict[str, Any]]
    """Metrics of each seed, with its ``seed``."""
    summary: dict[str, Any]
    """Metrics over all seeds together."""
    traces: list[Trace] = field(default_factory=list, repr=False)
    """Per-step traces, one per seed."""
    lane_width: float = 3.5
    """Lane width in metres, for plots."""
    vehicle_width: float = 1.8
    """Car width in metres, for plots."""
    road_lines: tuple[float, ...] = ()
    """Lateral positions of the painted lines or road edges, in metres, for plots."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of everything but the traces."""
        return {
            "policy": self.policy,
            "env": self.env,
            "perturbations": list(self.perturbations),
            "distance_m": self.distance,
            "seeds": [row["seed"] for row in self.per_seed],
            "summary": self.summary,
            "per_seed": self.per_seed,
        }

    def save(self, out_dir: str | Path, stem: str = "evaluation", plot: bool = True) -> dict[
            str, Path]:
        """Write ``<stem>.json``, ``<stem>.csv``, ``<stem>_traces.npz`` and (with ``plot``)
        ``<stem>.png`` into ``out_dir``; return the paths by kind."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": out / f"{stem}.json",
            "csv": out / f"{stem}.csv",
            "traces": out / f"{stem}_traces.npz",
        }
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n")

        columns = ["policy", "env", "perturbations", "seed", *self.summary.keys()]
        with paths["csv"].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            common = {
                "policy": self.policy,
                "env": self.env,
                "perturbations": " ".join(self.perturbations),
            }
            for row in self.per_seed:
                writer.writerow({**common, **row})
            writer.writerow({**common, "seed": "all", **self.summary})

        arrays = {}
        for trace in self.traces:
            for name in ("progress", "s", "x", "y", "lateral_offset", "command",
                         "road_curvature", "departure"):
                arrays[f"seed{trace.seed}_{name}"] = getattr(trace, name)
        np.savez_compressed(paths["traces"], **arrays)

        if plot:
            paths["png"] = out / f"{stem}.png"
            self.plot(paths["png"])
        return paths

    def plot(self, path: str | Path, max_seeds: int = 4) -> None:
        """Save a figure with, per seed, the driven path over the road seen from above and
        the lateral offset along the road with the lane limits."""
        # A bare Figure draws without pyplot, so the caller's backend and figures are left
        # alone.
        from matplotlib.figure import Figure

        traces = self.traces[:max_seeds]
        if not traces:
            raise ValueError("this result has no traces to plot; evaluate with keep_traces")
        figure = Figure(figsize=(11, 3.2 * len(traces)))
        axes = figure.subplots(len(traces), 2, squeeze=False,
                               gridspec_kw={"width_ratios": [1.0, 1.6]})
        half_lane = 0.5 * self.lane_width
        for row, trace in enumerate(traces):
            top, side = axes[row]

            # Top-down view: road, lane edges, driven path, departures.
            centreline = trace.centreline
            if centreline is not None:
                if centreline.closed:
                    s = np.arange(0.0, centreline.length, 1.0)
                else:
                    s = np.arange(trace.s.min() - 10.0, trace.s.max() + 10.0, 1.0)
                cx, cy, heading, _ = centreline.sample(s)
                for line in self.road_lines:
                    top.plot(cx - line * np.sin(heading), cy + line * np.cos(heading),
                             color="0.55", lw=0.8)
            top.plot(trace.x, trace.y, color="tab:blue", lw=1.2, label="driven path")
            hits = trace.departure.astype(bool)
            top.plot(trace.x[hits], trace.y[hits], "x", color="tab:red", ms=7,
                     label="departure")
            top.set_aspect("equal", adjustable="datalim")
            top.set_title(f"seed {trace.seed}: path from above")
            top.set_xlabel("x (m)")
            top.set_ylabel("y (m)")

            # Lateral offset along the road, with the lane limits.
            side.axhspan(-(half_lane - 0.5 * self.vehicle_width),
                         half_lane - 0.5 * self.vehicle_width, color="tab:green", alpha=0.12,
                         label="whole car in lane")
            for limit in (-half_lane, half_lane):
                side.axhline(limit, color="0.4", lw=0.8)
            side.plot(trace.progress, trace.lateral_offset, color="tab:blue", lw=1.0,
                      label="lateral offset")
            side.plot(trace.progress[hits], trace.lateral_offset[hits], "x", color="tab:red",
                      ms=7, label="departure")
            side.set_xlabel("distance along the road (m)")
            side.set_ylabel("offset (m, + left)")
            side.set_ylim(-1.5 * self.lane_width, 1.5 * self.lane_width)
            side.set_title(f"seed {trace.seed}: lateral offset")
            if row == 0:
                side.legend(loc="upper right", fontsize=8)
        perturbed = ", ".join(self.perturbations) or "no perturbation"
        figure.suptitle(f"{self.policy} on {self.env} ({perturbed})")
        figure.tight_layout()
        figure.savefig(path, dpi=110)


def evaluate(
    policy: Callable[..., float],
    *,
    env: str = "sim",
    seeds: Sequence[int] = DEFAULT_SEEDS,
    distance: float = 1000.0,
    perturbations: Sequence[str | Perturbation] = (),
    env_overrides: dict[str, Any] | None = None,
    name: str | None = None,
    keep_traces: bool = True,
    progress: bool = True,
    description: str | None = None,
) -> EvaluationResult:
    """Drive ``policy`` for ``distance`` metres on each seed and compute its metrics.

    Arguments:
        policy: a policy as defined in :mod:`torchlnn.driving.policy`.
        env: ``"sim"`` or ``"carracing"``.
        seeds: seeds of the roads (and of the perturbation parameters).
        distance: distance along the road per seed, in metres.
        perturbations: perturbations or ``name:strength`` strings, applied in order to every
            frame before the policy sees it.
        env_overrides: configuration fields of the environment to change, e.g.
            ``{"speed": 12.0}``.
        name: name of the policy in the results; defaults to its class name.
        keep_traces: keep per-step traces for plots and ``.npz`` output.
        progress: show a progress bar.
        description: the progress bar's label; defaults to ``"evaluate NAME"``.
    """
    if distance <= 0:
        raise ValueError(f"distance must be positive metres, got {distance}")
    if len(seeds) == 0:
        raise ValueError("seeds must name at least one seed")
    items = [parse_perturbation(p) if isinstance(p, str) else p for p in perturbations]
    name = (name or getattr(policy, "name", None) or getattr(policy, "__name__", None)
            or type(policy).__name__)

    # Enough steps for the distance at the nominal speed, with room for a weaving car whose
    # progress along the road is slower than its speed. The CarRacing car also accelerates
    # and brakes, so it gets three times as many.
    overrides = dict(env_overrides or {})
    probe = make_env(env, **overrides)
    dt = probe.unwrapped.dt
    speed = probe.unwrapped.nominal_speed
    probe.close()
    slack = 1.5 if env == "sim" else 3.0
    overrides.setdefault("episode_steps", int(math.ceil(slack * distance / (speed * dt))) + 100)
    overrides["terminate_on_departure"] = False
    environment = make_env(env, **overrides)
    base = environment.unwrapped

    from tqdm.auto import tqdm

    # The bar counts metres of road; it shows no rate, which would read like the car's speed.
    layout = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} m [{elapsed}<{remaining}]"
    bar = tqdm(
        total=int(round(len(seeds) * distance)),
        desc=description or f"evaluate {name}",
        bar_format=layout,
        disable=not progress,
        leave=False,
    )
    per_seed: list[dict[str, Any]] = []
    traces: list[Trace] = []
    try:
        for seed in seeds:
            trace = _drive(environment, policy, int(seed), distance, items, bar)
            metrics = compute_metrics(
                trace.lateral_offset, trace.command, float(trace.progress[-1]), dt,
                base.lane_width, base.vehicle_width, base.departure_offset,
            )
            per_seed.append({"seed": int(seed), **metrics})
            if keep_traces:
                traces.append(trace)
    finally:
        bar.close()
        environment.close()

    return EvaluationResult(
        policy=name,
        env=env,
        perturbations=[p.spec() for p in items],
        distance=float(distance),
        per_seed=per_seed,
        summary=_summarise(per_seed),
        traces=traces,
        lane_width=base.lane_width,
        vehicle_width=base.vehicle_width,
        road_lines=tuple(base.road_lines),
    )


def _drive(
    environment: Any,
    policy: Callable[..., float],
    seed: int,
    distance: float,
    perturbations: list[Perturbation],
    bar: Any,
) -> Trace:
    """Run one seed and return its trace."""
    base = environment.unwrapped
    for index, perturbation in enumerate(perturbations):
        stream = np.random.SeedSequence([seed, _PERTURBATION_STREAM, index])
        perturbation.reset(np.random.default_rng(stream))
        perturbation.attach(environment)
    reset_policy(policy)
    observation, info = environment.reset(seed=seed)

    records: dict[str, list[float]] = {key: [] for key in (
        "progress", "s", "x", "y", "lateral_offset", "command", "road_curvature", "departure")}
    reported = 0  # whole metres shown on the progress bar
    try:
        while info["progress"] < distance:
            frame = frame_to_float(observation)
            for perturbation in perturbations:
                frame = perturbation(frame)
            command = float(policy(frame, policy_info(policy, info)))
            if not math.isfinite(command):
                raise ValueError(
                    f"policy returned a non-finite curvature {command} at step {info['step']} "
                    f"of seed {seed}; a policy must return a finite float in 1/m"
                )
            observation, _, terminated, truncated, info = environment.step(
                np.array([command], dtype=np.float32))

            departed = bool(info["departure"])
            records["progress"].append(info["progress"])
            records["s"].append(info["s"])
            records["x"].append(info["x"])
            records["y"].append(info["y"])
            records["lateral_offset"].append(info["lateral_offset"])
            records["command"].append(command)
            records["road_curvature"].append(info["road_curvature"])
            records["departure"].append(departed)
            if departed:
                observation, info = base.recover()
            if truncated and info["progress"] < distance:
                raise RuntimeError(
                    f"seed {seed} was truncated after {info['progress']:.0f} m of the "
                    f"{distance:.0f} m requested because the episode ran out of steps; pass "
                    f"a larger episode_steps in env_overrides"
                )
            if info["progress"] - reported >= 10.0:
                done = int(min(info["progress"], distance))
                bar.update(done - reported)
                reported = done
    finally:
        for perturbation in perturbations:
            perturbation.detach(environment)
    bar.update(int(round(distance)) - reported)

    arrays = {key: np.asarray(values, dtype=np.float64) for key, values in records.items()}
    arrays["departure"] = arrays["departure"].astype(bool)
    return Trace(seed=seed, centreline=info["centreline"], **arrays)


def _summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over all seeds: totals, and means weighted by the number of steps."""
    steps = np.array([row["steps"] for row in per_seed], dtype=np.float64)
    distance = float(sum(row["distance_m"] for row in per_seed))
    departures = int(sum(row["departures"] for row in per_seed))

    def weighted(key: str) -> float:
        return float(np.sum(steps * np.array([row[key] for row in per_seed])) / steps.sum())

    return {
        "distance_m": distance,
        "steps": int(steps.sum()),
        "departures": departures,
        "departures_per_km": departures / (distance / 1000.0),
        "mean_abs_offset_m": weighted("mean_abs_offset_m"),
        "max_abs_offset_m": float(max(row["max_abs_offset_m"] for row in per_seed)),
        "in_lane_fraction": weighted("in_lane_fraction"),
        "steering_rate_rms": float(np.sqrt(
            np.sum(steps * np.array([row["steering_rate_rms"] for row in per_seed]) ** 2)
            / steps.sum())),
    }
