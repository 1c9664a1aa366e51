"""The expert driver: control law, and staying in lane in closed loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from torchlnn.driving.env import LaneKeepingEnv
from torchlnn.driving.evaluation import evaluate
from torchlnn.driving.expert import PurePursuitExpert


def test_zero_errors_on_straight_give_zero_command():
    assert PurePursuitExpert().command(0.0, 0.0, 15.0, 0.0, 2.7) == 0.0


def test_steady_state_on_a_curve_commands_road_curvature():
    # A car whose rear axle follows a curve of curvature k has its body centre L^2 k / 8
    # outside the curve, yawed atan(k L / 2) outwards. The expert must accept that state.
    expert = PurePursuitExpert()
    wheelbase, curvature = 2.7, 1.0 / 80.0
    offset = -wheelbase**2 * curvature / 8.0
    heading = -math.atan(0.5 * wheelbase * curvature)

    assert expert.command(offset, heading, 15.0, curvature, wheelbase) == pytest.approx(
        curvature, abs=1e-12)


def test_correction_steers_back_towards_the_centre():
    expert = PurePursuitExpert()

    assert expert.command(0.5, 0.0, 15.0, 0.0, 2.7) < 0.0  # left of centre: turn right
    assert expert.command(-0.5, 0.0, 15.0, 0.0, 2.7) > 0.0
    assert expert.command(0.0, 0.05, 15.0, 0.0, 2.7) < 0.0  # pointing left: turn right


def test_missing_privileged_info_is_an_error():
    with pytest.raises(KeyError, match="privileged info"):
        PurePursuitExpert()(None, {"step": 0, "time": 0.0, "speed": 15.0})


def test_expert_has_no_departures_on_simulator_seeds():
    result = evaluate(PurePursuitExpert(), env="sim", seeds=range(8), distance=300.0,
                      progress=False)

    for row in result.per_seed:
        assert row["departures"] == 0, row
        assert row["in_lane_fraction"] == 1.0, row
        assert row["max_abs_offset_m"] < 0.15, row
    assert result.summary["mean_abs_offset_m"] < 0.03


@pytest.mark.parametrize("offset, heading", [(1.2, 0.1), (-1.2, -0.1), (1.2, -0.1),
                                             (-1.2, 0.1)])
def test_expert_recovers_from_offset_starts(offset, heading):
    env = LaneKeepingEnv()
    expert = PurePursuitExpert()
    observation, info = env.reset(seed=21, options={"lateral_offset": offset,
                                                    "heading_error": heading})
    offsets = []
    for _ in range(150):  # 5 s
        observation, _, terminated, _, info = env.step(
            np.array([expert(observation, info)], dtype=np.float32))
        assert not terminated
        offsets.append(info["lateral_offset"])

    assert max(abs(value) for value in offsets) < 0.5 * env.config.road.lane_width
    assert abs(offsets[-1]) < 0.05
