"""The closed-loop harness: metrics, privacy of ground truth, determinism and outputs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from torchlnn.driving.evaluation import compute_metrics, evaluate
from torchlnn.driving.expert import PurePursuitExpert
from torchlnn.driving.policy import PUBLIC_INFO_KEYS, ConstantPolicy


def test_metrics_of_hand_made_trajectory():
    offsets = [0.0, 0.5, 1.0, 2.0, 0.0, 0.0, -1.9, -1.9, 0.2, 0.0]
    commands = [0.0, 0.01, 0.02, 0.02, 0.0, 0.0, -0.01, -0.01, 0.0, 0.0]
    metrics = compute_metrics(offsets, commands, distance=250.0, dt=0.1, lane_width=3.5,
                              vehicle_width=1.8)

    # Offsets beyond 1.75 m start at steps 3 and 6; step 7 continues the second departure.
    assert metrics["departures"] == 2
    assert metrics["departures_per_km"] == pytest.approx(8.0)
    assert metrics["mean_abs_offset_m"] == pytest.approx(0.75)
    assert metrics["max_abs_offset_m"] == pytest.approx(2.0)
    # The whole car is in lane while |offset| <= (3.5 - 1.8) / 2 = 0.85 m: 6 of 10 steps.
    assert metrics["in_lane_fraction"] == pytest.approx(0.6)
    # Steering rates 0.1, 0.1, 0, -0.2, 0, -0.1, 0, 0.1, 0 per (m s).
    assert metrics["steering_rate_rms"] == pytest.approx(math.sqrt(0.08 / 9))
    assert metrics["steps"] == 10


def test_metrics_count_a_start_outside_the_lane():
    metrics = compute_metrics([2.0, 2.0, 0.0], [0.0, 0.0, 0.0], distance=10.0, dt=0.1,
                              lane_width=3.5, vehicle_width=1.8)
    assert metrics["departures"] == 1


def test_metrics_reject_mismatched_arrays():
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics([0.0, 0.1], [0.0], distance=10.0, dt=0.1, lane_width=3.5,
                        vehicle_width=1.8)


class RecordingPolicy:
    """Drives straight and records what it is given."""

    def __init__(self, privileged=False):
        self.privileged = privileged
        self.keys = set()
        self.frames = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def __call__(self, frame, info):
        self.keys |= set(info)
        self.frames.append(frame.copy())
        return 0.0


def test_learned_policies_see_no_ground_truth():
    public, privileged = RecordingPolicy(), RecordingPolicy(privileged=True)
    evaluate(public, seeds=[1], distance=30.0, progress=False)
    evaluate(privileged, seeds=[1], distance=30.0, progress=False)

    assert public.keys == set(PUBLIC_INFO_KEYS)
    assert {"lateral_offset", "heading_error", "centreline"} <= privileged.keys
    assert public.frames[0].dtype == np.float32
    assert public.frames[0].shape == (78, 200, 3)
    assert public.frames[0].min() >= 0.0
    assert public.frames[0].max() <= 1.0


def test_policy_is_reset_once_per_seed():
    policy = RecordingPolicy()
    evaluate(policy, seeds=[1, 2, 3], distance=10.0, progress=False)
    assert policy.resets == 3


def test_progress_bar_label_and_metres(capsys):
    evaluate(ConstantPolicy(0.0), seeds=[1], distance=20.0, description="evaluate 2/8: cnn")
    bar = capsys.readouterr().err
    assert "evaluate 2/8: cnn" in bar
    assert "/20 m [" in bar
    assert "m/s" not in bar  # a rate of road metres per second would read like the speed


def test_every_policy_gets_the_same_roads_and_noise():
    first, second = RecordingPolicy(), RecordingPolicy()
    result_a = evaluate(first, seeds=[4], distance=20.0, perturbations=["noise:0.1"],
                        progress=False)
    result_b = evaluate(second, seeds=[4], distance=20.0, perturbations=["noise:0.1"],
                        progress=False)

    assert result_a.traces[0].centreline == result_b.traces[0].centreline
    np.testing.assert_array_equal(np.stack(first.frames), np.stack(second.frames))
    assert first.frames[0].min() < 0.0  # the noise is there, unclipped


def test_evaluation_is_deterministic():
    result_a = evaluate(PurePursuitExpert(), seeds=[5, 6], distance=100.0, progress=False)
    result_b = evaluate(PurePursuitExpert(), seeds=[5, 6], distance=100.0, progress=False)

    assert result_a.per_seed == result_b.per_seed
    for trace_a, trace_b in zip(result_a.traces, result_b.traces, strict=True):
        np.testing.assert_array_equal(trace_a.lateral_offset, trace_b.lateral_offset)


def test_departures_are_counted_and_car_put_back():
    result = evaluate(ConstantPolicy(0.0), seeds=[1000], distance=400.0, progress=False)
    trace = result.traces[0]
    steps = np.nonzero(trace.departure)[0]

    assert result.per_seed[0]["departures"] == len(steps) > 0
    assert np.all(np.abs(trace.lateral_offset[steps]) > 1.75)
    # The safety driver puts the car back on the centre: the next step starts near zero.
    following = steps[steps + 1 < len(trace.lateral_offset)] + 1
    assert np.all(np.abs(trace.lateral_offset[following]) < 0.1)
    assert trace.progress[-1] >= 400.0
    assert result.summary["departures_per_km"] == pytest.approx(
        len(steps) / (trace.progress[-1] / 1000.0))


def test_non_finite_policy_output_is_an_error():
    with pytest.raises(ValueError, match="non-finite curvature"):
        evaluate(lambda frame, info: float("nan"), seeds=[1], distance=5.0, progress=False)


def test_save_writes_json_csv_traces_and_plot(tmp_path):
    result = evaluate(ConstantPolicy(0.0), seeds=[1000, 1001], distance=150.0,
                      perturbations=["shadow:0.5"], name="straight", progress=False)
    paths = result.save(tmp_path, stem="straight")

    record = json.loads(paths["json"].read_text())
    assert record["policy"] == "straight"
    assert record["perturbations"] == ["shadow:0.5"]
    assert record["seeds"] == [1000, 1001]
    assert record["summary"]["departures"] == sum(r["departures"] for r in record["per_seed"])

    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["seed"] for row in rows] == ["1000", "1001", "all"]

    traces = np.load(paths["traces"])
    assert "seed1000_lateral_offset" in traces.files
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
