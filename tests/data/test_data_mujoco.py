from __future__ import annotations

import numpy as np
import pytest
import torch

from torchlnn.data import load_mujoco
from torchlnn.data import mujoco as mujoco_module
from torchlnn.data.mujoco import generate_rollouts

pytestmark = pytest.mark.usefixtures("mujoco_available")

TINY = {"num_rollouts": 3, "rollout_steps": 60, "window": 16, "stride": 8, "progress": False}


@pytest.fixture(scope="module")
def walker():
    return load_mujoco("Walker2d-v5", **TINY)


def test_walker_shapes_and_metadata(walker):
    for split in ("train", "valid", "test"):
        data = walker[split]
        assert data.inputs.shape[1:] == (16, 17)
        assert data.targets.shape == data.inputs.shape
        assert data.timespans.shape == data.inputs.shape[:2]
        assert data.mask is None
        assert len(data) > 0
    assert walker.info.sampling_period == pytest.approx(0.008)
    assert walker.info.input_names[0] == "rootz:position"
    assert walker.info.input_names[-1] == "foot_left_joint:velocity"
    assert walker.info.details["test_rollouts"] == [0]


def test_timespans_count_dropped_frames(walker):
    timespans = torch.cat([walker[split].timespans.flatten() for split in ("train", "test")])
    assert bool(torch.all(timespans >= 1.0))
    assert bool(torch.all(timespans == timespans.round()))
    assert bool((timespans > 1.0).any())  # some frames were dropped


def test_drop_rate_matches_keep_probability():
    rng = np.random.default_rng(0)
    kept, timespans = mujoco_module._drop_frames(100_000, 0.9, rng)
    assert kept[0] == 0
    assert timespans.sum() == kept[-1] + 1
    assert len(kept) / 100_000 == pytest.approx(0.9, abs=0.005)


def test_next_observed_targets_are_next_inputs(walker):
    data = walker.train
    assert torch.equal(data.targets[:, :-1], data.inputs[:, 1:])


def test_targets_follow_generated_rollout():
    splits = load_mujoco("Walker2d-v5", keep_probability=1.0, target="next_step", **TINY)
    rollouts = generate_rollouts("Walker2d-v5", num_rollouts=3, rollout_steps=60, progress=False)
    observations = torch.from_numpy(rollouts[0][0].astype(np.float32))  # test rollout
    assert bool(torch.all(splits.test.timespans == 1.0))
    assert torch.equal(splits.test.inputs[0], observations[0:16])
    assert torch.equal(splits.test.targets[0], observations[1:17])
    assert torch.equal(splits.test.inputs[1], observations[8:24])


def test_seed_determinism(walker):
    again = load_mujoco("Walker2d-v5", **TINY)
    other = load_mujoco("Walker2d-v5", seed=1, **TINY)
    assert torch.equal(walker.train.inputs, again.train.inputs)
    assert torch.equal(walker.train.timespans, again.train.timespans)
    assert not torch.equal(walker.test.inputs, other.test.inputs)


def test_more_rollouts_extend_fewer():
    few = generate_rollouts("Walker2d-v5", num_rollouts=2, rollout_steps=30, progress=False)
    more = generate_rollouts("Walker2d-v5", num_rollouts=3, rollout_steps=30, progress=False)
    for (obs_a, act_a), (obs_b, act_b) in zip(few, more[:2], strict=True):
        assert np.array_equal(obs_a, obs_b)
        assert np.array_equal(act_a, act_b)
    assert more[0][0].shape == (31, 17)
    assert more[0][1].shape == (30, 6)


def test_nothing_written_without_cache_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    # HalfCheetah-v5 makes MuJoCo 4 warn, which would append to ./MUJOCO_LOG.TXT unhandled.
    load_mujoco("HalfCheetah-v5", **TINY)
    generate_rollouts("Walker2d-v5", num_rollouts=2, rollout_steps=20, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cache_reuses_and_resumes(tmp_path, monkeypatch):
    settings = {"num_rollouts": 3, "rollout_steps": 20, "progress": False}
    fresh = generate_rollouts("HalfCheetah-v5", cache_dir=tmp_path, **settings)
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1
    files = sorted(path.name for path in folders[0].iterdir())
    assert files == ["rollout_00000.npz", "rollout_00001.npz", "rollout_00002.npz", "settings.json"]

    # A second call reads every rollout from the cache and simulates nothing.
    def fail(*args, **kwargs):
        raise AssertionError("a cached rollout was simulated again")

    with monkeypatch.context() as patch:
        patch.setattr(mujoco_module, "_run_rollout", fail)
        cached = generate_rollouts("HalfCheetah-v5", cache_dir=tmp_path, **settings)
    for (obs_a, _), (obs_b, _) in zip(fresh, cached, strict=True):
        assert np.array_equal(obs_a, obs_b)

    # A missing rollout (an interrupted run) is generated again, identically.
    (folders[0] / "rollout_00001.npz").unlink()
    resumed = generate_rollouts("HalfCheetah-v5", cache_dir=tmp_path, **settings)
    assert np.array_equal(resumed[1][0], fresh[1][0])


def test_halfcheetah_with_actions():
    splits = load_mujoco("HalfCheetah-v5", include_actions=True, **TINY)
    assert splits.train.inputs.shape[2] == 23
    assert splits.info.input_names[-1] == "action:ffoot"
    assert splits.info.target_names[-1] == "ffoot:velocity"
    assert splits.train.targets.shape[2] == 17
    actions = splits.train.inputs[..., 17:]
    assert bool(torch.all(actions.abs() <= 1.0))
    assert actions.std().item() > 0.1
    assert splits.info.sampling_period == pytest.approx(0.05)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="leaves no training rollout"):
        load_mujoco(num_rollouts=2, rollout_steps=20, progress=False)
    with pytest.raises(ValueError, match="target must be one of"):
        load_mujoco(target="next", **TINY)
    with pytest.raises(ValueError, match="keep_probability must lie in"):
        load_mujoco(keep_probability=0.0, **TINY)
    with pytest.raises(ValueError, match="give no window of 100 steps"):
        load_mujoco(**{**TINY, "window": 100})
