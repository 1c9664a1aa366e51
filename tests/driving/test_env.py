"""The simulator as a Gymnasium environment: API, determinism and sign conventions."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import torchlnn.driving  # noqa: F401  (registers the environments)
from torchlnn.driving.camera import CameraConfig, GroundRays
from torchlnn.driving.env import LaneKeepingEnv, SimConfig
from torchlnn.driving.policy import PUBLIC_INFO_KEYS, ConstantPolicy, policy_info


def test_passes_gymnasium_check_env():
    env = gym.make("torchlnn/LaneKeeping-v0", render_mode="rgb_array", episode_steps=50)
    check_env(env.unwrapped)
    env.close()


def test_spaces_follow_the_configuration():
    env = LaneKeepingEnv(image_height=40, image_width=96)
    observation, info = env.reset(seed=0)

    assert env.observation_space.shape == (40, 96, 3)
    assert observation.shape == (40, 96, 3)
    assert observation.dtype == np.uint8
    assert env.action_space.high[0] == pytest.approx(env.config.vehicle.max_curvature)
    assert env.metadata["render_fps"] == 30


def _drive(env, seed, actions):
    observation, info = env.reset(seed=seed)
    frames, offsets = [observation], [info["lateral_offset"]]
    for action in actions:
        observation, _, _, _, info = env.step(np.array([action], dtype=np.float32))
        frames.append(observation)
        offsets.append(info["lateral_offset"])
    return np.stack(frames), np.array(offsets), info


def test_same_seed_gives_identical_episodes():
    actions = np.sin(np.arange(60) / 10.0) * 0.01
    frames_a, offsets_a, info_a = _drive(LaneKeepingEnv(), 7, actions)
    frames_b, offsets_b, info_b = _drive(LaneKeepingEnv(), 7, actions)
    frames_c, _, info_c = _drive(LaneKeepingEnv(), 8, actions)

    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(offsets_a, offsets_b)
    assert info_a["centreline"] == info_b["centreline"]
    assert not np.array_equal(frames_a, frames_c)
    assert info_a["centreline"] != info_c["centreline"]


def _white_centroid(frame):
    # Column centroid of the white lines in the bottom rows: pixels much brighter than the
    # typical pixel there and nearly grey (asphalt is grey but darker, grass is coloured).
    bottom = frame[-25:].astype(np.float64)
    luminance = bottom.mean(axis=-1)
    typical = np.median(luminance)
    bright = luminance > typical + 0.5 * (luminance.max() - typical)
    grey = np.ptp(bottom, axis=-1) < 0.25 * luminance
    columns = np.nonzero(bright & grey)[1]
    assert len(columns) > 20, "expected white lane markings near the car"
    return columns.mean()


def test_offset_to_the_left_shifts_markings_right():
    env = LaneKeepingEnv()
    left, info_left = env.reset(seed=2, options={"lateral_offset": 0.8})
    right, info_right = env.reset(seed=2, options={"lateral_offset": -0.8})

    assert info_left["lateral_offset"] == pytest.approx(0.8, abs=1e-6)
    assert info_right["lateral_offset"] == pytest.approx(-0.8, abs=1e-6)
    assert _white_centroid(left) > _white_centroid(right) + 5


def test_positive_curvature_steers_left():
    env = LaneKeepingEnv(steer_time_constant=0.0)
    _, start = env.reset(seed=3)  # every road starts with a straight
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([0.01], dtype=np.float32))

    assert info["yaw"] > start["yaw"]
    assert info["lateral_offset"] > 0.05
    assert info["heading_error"] > 0.0
    assert info["path_curvature"] == pytest.approx(0.01, rel=1e-6)


def test_heading_error_to_the_left_drifts_left():
    env = LaneKeepingEnv()
    _, info = env.reset(seed=4, options={"heading_error": 0.03})
    assert info["heading_error"] == pytest.approx(0.03, abs=1e-6)
    for _ in range(15):
        _, _, _, _, info = env.step(np.array([0.0], dtype=np.float32))

    assert info["lateral_offset"] > 0.1


def test_ground_truth_stays_out_of_the_observation():
    env = LaneKeepingEnv()
    observation, info = env.reset(seed=0)
    visible = policy_info(ConstantPolicy(), info)

    assert isinstance(observation, np.ndarray)
    assert set(visible) == set(PUBLIC_INFO_KEYS)
    for key in ("lateral_offset", "heading_error", "curvature_ahead", "centreline"):
        assert key in info
        assert key not in visible


def test_departure_terminates_and_recover_recentres():
    env = LaneKeepingEnv()
    env.reset(seed=5)
    terminated = False
    for _ in range(300):
        _, _, terminated, truncated, info = env.step(np.array([0.05], dtype=np.float32))
        if terminated:
            break
    assert terminated
    assert info["departure"]
    assert abs(info["lateral_offset"]) > 0.5 * env.config.road.lane_width

    _, info = env.recover()
    assert info["lateral_offset"] == pytest.approx(0.0, abs=1e-6)
    assert info["heading_error"] == pytest.approx(0.0, abs=1e-6)
    assert not info["departure"]


def test_truncates_after_episode_steps():
    env = LaneKeepingEnv(episode_steps=12)
    env.reset(seed=0)
    flags = [env.step(np.array([0.0], dtype=np.float32))[3] for _ in range(12)]

    assert flags == [False] * 11 + [True]


def test_camera_offset_changes_the_view():
    env = LaneKeepingEnv(render_mode="rgb_array")
    centred, _ = env.reset(seed=6)
    env.set_camera_offset(lateral=0.5)
    moved = env.render()
    env.set_camera_offset(0.0, 0.0)
    restored = env.render()

    assert _white_centroid(moved) > _white_centroid(centred)
    np.testing.assert_array_equal(restored, centred)


def test_ground_rays_match_pinhole_geometry():
    camera = CameraConfig()
    rays = GroundRays(camera)
    focal = camera.focal_length
    theta = math.radians(camera.pitch_deg)

    # Straight below the optical centre: the ray dips theta + atan(y_c) below the horizon.
    for index, row in enumerate(range(rays.first_ground_row, camera.image_height)):
        y_c = (row + 0.5 - 0.5 * camera.image_height) / focal
        expected = camera.mount_height / math.tan(theta + math.atan(y_c))
        assert rays.forward[index] == pytest.approx(expected, rel=1e-5)
    # The bottom row sees the ground a few metres ahead; the first ground row far away.
    assert 2.0 < rays.forward[-1] < 3.5
    assert rays.forward[0] <= camera.view_distance
    # Pixels right of the centre see the ground to the right (negative lateral).
    assert rays.lateral[-1, -1] < 0 < rays.lateral[-1, 0]


def test_config_round_trip_and_overrides():
    config = SimConfig().replace(speed=12.0, image_width=160, min_radius=80.0)

    assert config.vehicle.speed == 12.0
    assert config.camera.image_width == 160
    assert config.road.min_radius == 80.0
    assert SimConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown SimConfig field 'speeed'"):
        SimConfig().replace(speeed=1.0)


def test_reset_rejects_unknown_options():
    with pytest.raises(ValueError, match="unknown reset options"):
        LaneKeepingEnv().reset(seed=0, options={"offset": 1.0})
