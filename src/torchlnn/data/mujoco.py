r"""Irregularly sampled MuJoCo rollouts (Walker2d, HalfCheetah) generated with gymnasium.

The CfC paper (Hasani et al., Nature Machine Intelligence 2022) models Walker2d kinematics
from recorded rollouts with random frame drops. Those recordings do not ship with torchlnn
and loaders never download, so :func:`load_mujoco` generates rollouts locally with
``gymnasium[mujoco]`` (no rendering) and applies the same kind of frame drops:

1. **Rollouts.** Each rollout resets the environment with its own seed and runs
   ``rollout_steps`` control steps under a smooth random policy (below). Walker2d runs with
   ``terminate_when_unhealthy=False``, so a rollout continues after the walker falls and
   every rollout is one continuous trajectory of ``rollout_steps + 1`` observations.
2. **Policy.** Every action dimension follows a discrete Ornstein-Uhlenbeck process

   .. math:: a_{t+1} = \rho\, a_t + \sqrt{1 - \rho^2}\, \sigma\, \varepsilon_t,
             \qquad \rho = e^{-1/\tau}, \quad \varepsilon_t \sim \mathcal{N}(0, 1),

   started from :math:`a_0 \sim \mathcal{N}(0, \sigma^2)`, so the stationary standard
   deviation is :math:`\sigma` (``action_std``, in units of half the action range) and the
   correlation time is :math:`\tau` control steps (``correlation_steps``). The applied action
   is :math:`a_t` clipped to ``[-1, 1]`` and mapped onto the action space. Smooth actions
   resemble a controller's output. Under white-noise actions, HalfCheetah's joint velocities
   change sign from one 50 ms step to the next, while a torque held for about :math:`\tau`
   steps gives smooth joint motion (measurements in ``docs/data.md``). No trained policy, and so
   no download, is needed.
3. **Frame drops.** Each observation is kept independently with probability
   ``keep_probability`` (0.9); the first observation of a rollout is always kept. The
   ``timespans`` entry of a kept observation is the number of control steps since the
   previous kept one (1 for the first), in units of ``env.dt`` seconds.
4. **Task.** Inputs are the kept observations (optionally with the action applied at that
   step). ``target="next_observed"`` predicts the next kept observation. Its time offset,
   the next timespan, is not an input. ``target="next_step"`` predicts the observation one
   control step after each kept one, as the CfC paper's Walker2d code does. The sequences
   are cut into windows of ``window`` steps every ``stride`` steps.
5. **Splits.** Rollouts are independent draws, so they are split by index: the first
   ``round(test_fraction * R)`` rollouts are test, the next ``round(valid_fraction * R)``
   validation and the rest training (at least one each). Windows never cross rollouts.

Rollout ``i`` depends only on ``seed``, ``i`` and the generation settings, so runs are
reproducible (on the same MuJoCo build) and a larger ``num_rollouts`` extends a smaller one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from torchlnn.data._types import DatasetInfo, SequenceData, SequenceSplits
from torchlnn.data._utils import check_fraction, import_optional

TARGETS: tuple[str, ...] = ("next_observed", "next_step")

# Environments whose episodes end when the robot falls; their rollouts keep running instead.
_TERMINATING_ENVS = ("Walker2d", "Hopper", "Ant", "Humanoid")

_PURPOSE = "Generating MuJoCo rollouts"

logger = logging.getLogger(__name__)


def _env_name(env_id: str) -> str:
    return env_id.split("-v")[0]


def _default_env_kwargs(env_id: str) -> dict[str, Any]:
    if _env_name(env_id) in _TERMINATING_ENVS:
        return {"terminate_when_unhealthy": False}
    return {}


@contextlib.contextmanager
def _mujoco_warnings_to_logging() -> Iterator[None]:
    """Send MuJoCo's warnings to this module's logger while the block runs.

    Without a handler, MuJoCo prints each warning and appends it to ``MUJOCO_LOG.TXT`` in the
    working directory. A loader must not write files the user did not request, and
    HalfCheetah-v5's model triggers a deprecation warning on every load with MuJoCo 4.0.
    Each distinct message is logged once, and repeats are counted and reported at the end.
    """
    mujoco = import_optional("mujoco", _PURPOSE)
    seen: Counter[str] = Counter()

    def handle(message: str) -> None:
        if not seen[message]:
            logger.warning("MuJoCo: %s", message)
        seen[message] += 1

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(handle)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
        for message, count in seen.items():
            if count > 1:
                logger.warning("MuJoCo warning repeated %d times: %s", count, message)


def _make_env(env_id: str, env_kwargs: Mapping[str, Any], rollout_steps: int):
    gymnasium = import_optional("gymnasium", _PURPOSE)
    import_optional("mujoco", _PURPOSE)
    env = gymnasium.make(env_id, max_episode_steps=rollout_steps, **env_kwargs)
    action_space = env.action_space
    if not isinstance(action_space, gymnasium.spaces.Box) or not np.all(
        np.isfinite(action_space.low) & np.isfinite(action_space.high)
    ):
        env.close()
        raise ValueError(
            f"{env_id} needs a bounded Box action space for the random policy, got {action_space}."
        )
    return env


def _feature_names(env) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """Name observation and action features from the MuJoCo model, where the layout is known.

    Observations are named when they are ``qpos[1:]`` followed by ``qvel`` (the layout of
    the Walker2d and HalfCheetah v5 observations) and every joint has one degree of freedom.
    """
    model = env.unwrapped.model
    num_observations = env.observation_space.shape[0]
    joint_names = [model.joint(j).name for j in range(model.njnt)]

    observation_names = None
    one_dof_joints = model.njnt == model.nq == model.nv
    if one_dof_joints and num_observations == model.nq - 1 + model.nv:
        order = np.argsort(model.jnt_qposadr)  # joints in qpos order
        ordered = [joint_names[j] for j in order]
        observation_names = tuple(
            [f"{name}:position" for name in ordered[1:]] + [f"{name}:velocity" for name in ordered]
        )

    action_names = []
    for a in range(model.nu):
        name = model.actuator(a).name or joint_names[int(model.actuator_trnid[a, 0])]
        action_names.append(f"action:{name}")
    return observation_names, tuple(action_names)


def _rollout_seeds(seed: int, index: int) -> tuple[int, np.random.Generator, np.random.Generator]:
    """Return the reset seed, action generator and frame-drop generator of rollout ``index``."""
    rollout = np.random.SeedSequence(seed, spawn_key=(index,))
    reset_sequence, action_sequence, drop_sequence = rollout.spawn(3)
    reset_seed = int(reset_sequence.generate_state(1)[0])
    return reset_seed, np.random.default_rng(action_sequence), np.random.default_rng(drop_sequence)


def _run_rollout(
    env, reset_seed: int, rng: np.random.Generator, steps: int, action_std: float, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """Run one rollout; return observations ``(S + 1, F)`` and actions ``(S, A)``, float64.

    ``S`` is ``steps`` unless the environment terminates first.
    """
    low, high = env.action_space.low, env.action_space.high
    centre, half_range = (high + low) / 2.0, (high - low) / 2.0
    rho = float(np.exp(-1.0 / tau))
    innovation_std = float(np.sqrt(1.0 - rho**2)) * action_std

    observation, _ = env.reset(seed=reset_seed)
    observations, actions = [np.asarray(observation, dtype=np.float64)], []
    state = rng.normal(0.0, action_std, size=low.shape)  # OU state a_0
    for _ in range(steps):
        action = centre + half_range * np.clip(state, -1.0, 1.0)
        observation, _, terminated, truncated, _ = env.step(action.astype(env.action_space.dtype))
        actions.append(action)
        observations.append(np.asarray(observation, dtype=np.float64))
        if terminated or truncated:
            break
        state = rho * state + innovation_std * rng.normal(size=low.shape)
    return np.stack(observations), np.stack(actions)


def _cache_folder(cache_dir: str | os.PathLike, settings: Mapping[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"{settings['env_id']}-{key}"


def generate_rollouts(
    env_id: str = "Walker2d-v5",
    *,
    num_rollouts: int = 50,
    rollout_steps: int = 1000,
    action_std: float = 0.5,
    correlation_steps: float = 10.0,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Generate rollouts under the smooth random policy (see the module docstring).

    Args:
        env_id: gymnasium MuJoCo environment id, e.g. ``"Walker2d-v5"``.
        num_rollouts: number of rollouts ``R``.
        rollout_steps: control steps per rollout ``S``.
        action_std: stationary standard deviation of the policy, in half action ranges.
        correlation_steps: correlation time of the policy, in control steps.
        seed: seed of the rollouts.
        env_kwargs: keyword arguments for ``gymnasium.make``; None uses
            ``terminate_when_unhealthy=False`` for Walker2d, Hopper, Ant and Humanoid.
        cache_dir: folder to store each generated rollout in and reuse it from. Nothing is
            written when it is None. Rollouts already there are loaded, so an interrupted
            generation resumes.
        progress: show a progress bar.

    Returns:
        One ``(observations (S + 1, F), actions (S, A))`` pair of float64 arrays per rollout.
    """
    if num_rollouts < 1 or rollout_steps < 1:
        raise ValueError(
            f"num_rollouts and rollout_steps must be positive, got {num_rollouts} and "
            f"{rollout_steps}."
        )
    if action_std <= 0 or correlation_steps <= 0:
        raise ValueError(
            f"action_std and correlation_steps must be positive, got {action_std} and "
            f"{correlation_steps}."
        )
    env_kwargs = dict(_default_env_kwargs(env_id) if env_kwargs is None else env_kwargs)
    gymnasium = import_optional("gymnasium", _PURPOSE)
    mujoco = import_optional("mujoco", _PURPOSE)
    tqdm = import_optional("tqdm", _PURPOSE).tqdm

    folder = None
    if cache_dir is not None:
        settings = {
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "rollout_steps": rollout_steps,
            "action_std": action_std,
            "correlation_steps": correlation_steps,
            "seed": seed,
            "gymnasium": gymnasium.__version__,
            "mujoco": mujoco.__version__,
        }
        folder = _cache_folder(cache_dir, settings)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True))

    env = None
    rollouts = []
    with _mujoco_warnings_to_logging():
        try:
            for index in tqdm(
                range(num_rollouts), desc=f"{env_id} rollouts", disable=not progress, leave=False
            ):
                path = None if folder is None else folder / f"rollout_{index:05d}.npz"
                if path is not None and path.is_file():
                    with np.load(path) as stored:
                        rollouts.append((stored["observations"], stored["actions"]))
                    continue

                if env is None:
                    env = _make_env(env_id, env_kwargs, rollout_steps)
                reset_seed, action_rng, _ = _rollout_seeds(seed, index)
                observations, actions = _run_rollout(
                    env, reset_seed, action_rng, rollout_steps, action_std, correlation_steps
                )
                rollouts.append((observations, actions))

                if path is not None:
                    # Write under a temporary name first, so that an interrupted run never
                    # leaves a truncated file under the final name.
                    temporary = path.with_suffix(".tmp.npz")
                    np.savez(temporary, observations=observations, actions=actions)
                    os.replace(temporary, path)
        finally:
            if env is not None:
                env.close()
    return rollouts


def _drop_frames(num_observations: int, keep_probability: float, rng: np.random.Generator):
    """Return the kept observation indices and their timespans (steps since the last kept)."""
    keep = rng.random(num_observations) < keep_probability  # (S + 1,)
    keep[0] = True
    kept_indices = np.flatnonzero(keep)  # (K,)
    timespans = np.diff(kept_indices, prepend=-1).astype(np.float32)  # (K,), first is 1
    return kept_indices, timespans


def _windows(array: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Cut ``(M, ...)`` into ``(W, window, ...)`` at starts 0, stride, ... <= M - window."""
    starts = range(0, array.shape[0] - window + 1, stride)
    if not starts:
        return np.zeros((0, window, *array.shape[1:]), dtype=array.dtype)
    return np.stack([array[start : start + window] for start in starts])


def load_mujoco(
    env_id: str = "Walker2d-v5",
    *,
    num_rollouts: int = 50,
    rollout_steps: int = 1000,
    keep_probability: float = 0.9,
    window: int = 64,
    stride: int = 16,
    target: Literal["next_observed", "next_step"] = "next_observed",
    include_actions: bool = False,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.15,
    action_std: float = 0.5,
    correlation_steps: float = 10.0,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SequenceSplits:
    """Generate the irregularly sampled kinematics task (see the module docstring).

    With the defaults (Walker2d-v5, 50 rollouts of 1000 steps) inputs are ``(N, 64, 17)``,
    targets ``(N, 64, 17)`` and timespans ``(N, 64)``; ``mask`` is None because every window
    is full. Observations are not normalised (Walker2d-v5 clips its velocities to +-10).

    Args:
        env_id: gymnasium MuJoCo environment id; ``"Walker2d-v5"`` and
            ``"HalfCheetah-v5"`` are the tested ones.
        num_rollouts: number of rollouts, at least 3 (one per split).
        rollout_steps: control steps per rollout.
        keep_probability: probability that an observation is kept, in ``(0, 1]``.
        window: steps per window ``T``.
        stride: steps between the starts of consecutive windows.
        target: ``"next_observed"`` or ``"next_step"``.
        include_actions: append the action applied at each kept step to its inputs.
        valid_fraction: fraction of rollouts used for validation.
        test_fraction: fraction of rollouts used for testing.
        action_std: stationary standard deviation of the policy, in half action ranges.
        correlation_steps: correlation time of the policy, in control steps.
        seed: seed of the rollouts and the frame drops.
        env_kwargs: keyword arguments for ``gymnasium.make`` (see :func:`generate_rollouts`).
        cache_dir: folder to cache rollouts in; nothing is written when None.
        progress: show a progress bar while generating.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}.")
    if not 0.0 < keep_probability <= 1.0:
        raise ValueError(f"keep_probability must lie in (0, 1], got {keep_probability}.")
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}.")
    check_fraction("valid_fraction", valid_fraction)
    check_fraction("test_fraction", test_fraction)
    num_test = max(1, int(round(test_fraction * num_rollouts)))
    num_valid = max(1, int(round(valid_fraction * num_rollouts)))
    if num_rollouts - num_test - num_valid < 1:
        raise ValueError(
            f"num_rollouts={num_rollouts} leaves no training rollout after {num_test} test and "
            f"{num_valid} validation rollouts; use at least 3 rollouts or smaller fractions."
        )

    rollouts = generate_rollouts(
        env_id,
        num_rollouts=num_rollouts,
        rollout_steps=rollout_steps,
        action_std=action_std,
        correlation_steps=correlation_steps,
        seed=seed,
        env_kwargs=env_kwargs,
        cache_dir=cache_dir,
        progress=progress,
    )

    # Turn every rollout into windows of irregularly sampled (input, timespan, target) steps.
    per_rollout = []
    for index, (observations, actions) in enumerate(rollouts):
        _, _, drop_rng = _rollout_seeds(seed, index)
        kept_indices, timespans = _drop_frames(observations.shape[0], keep_probability, drop_rng)
        if target == "next_observed":
            sources, target_indices = kept_indices[:-1], kept_indices[1:]  # (M,), (M,)
            timespans = timespans[:-1]
        else:
            has_next = kept_indices < actions.shape[0]  # the last observation has no successor
            sources, timespans = kept_indices[has_next], timespans[has_next]
            target_indices = sources + 1
        inputs = observations[sources]  # (M, F)
        if include_actions:
            inputs = np.concatenate([inputs, actions[sources]], axis=1)  # (M, F + A)
        per_rollout.append(
            (
                _windows(inputs, window, stride),  # (W, T, F_in)
                _windows(timespans, window, stride),  # (W, T)
                _windows(observations[target_indices], window, stride),  # (W, T, F)
            )
        )

    def build_split(indices: range, split: str) -> SequenceData:
        parts = [per_rollout[i] for i in indices]
        inputs = np.concatenate([part[0] for part in parts])
        if len(inputs) == 0:
            raise ValueError(
                f"The {split} rollouts give no window of {window} steps; increase "
                "rollout_steps or decrease window."
            )
        return SequenceData.from_numpy(
            inputs,
            np.concatenate([part[2] for part in parts]),
            timespans=np.concatenate([part[1] for part in parts]),
        )

    test_rollouts = range(0, num_test)
    valid_rollouts = range(num_test, num_test + num_valid)
    train_rollouts = range(num_test + num_valid, num_rollouts)

    observation_names, action_names, sampling_period = _describe_env(
        env_id, env_kwargs, rollout_steps
    )
    input_names = observation_names
    if include_actions and observation_names is not None:
        input_names = observation_names + action_names
    gymnasium = import_optional("gymnasium", _PURPOSE)
    mujoco = import_optional("mujoco", _PURPOSE)
    info = DatasetInfo(
        name=f"mujoco/{env_id}",
        task="regression",
        source=(
            f"generated by torchlnn.data.mujoco with gymnasium {gymnasium.__version__} and "
            f"MuJoCo {mujoco.__version__}"
        ),
        license="generated data, no third-party license (gymnasium: MIT, MuJoCo: Apache-2.0)",
        input_names=input_names,
        target_names=observation_names,
        sampling_period=sampling_period,
        details={
            "env_id": env_id,
            "env_kwargs": dict(_default_env_kwargs(env_id) if env_kwargs is None else env_kwargs),
            "num_rollouts": num_rollouts,
            "rollout_steps": rollout_steps,
            "keep_probability": keep_probability,
            "window": window,
            "stride": stride,
            "target": target,
            "include_actions": include_actions,
            "action_std": action_std,
            "correlation_steps": correlation_steps,
            "seed": seed,
            "train_rollouts": list(train_rollouts),
            "valid_rollouts": list(valid_rollouts),
            "test_rollouts": list(test_rollouts),
        },
    )
    return SequenceSplits(
        train=build_split(train_rollouts, "training"),
        valid=build_split(valid_rollouts, "validation"),
        test=build_split(test_rollouts, "test"),
        info=info,
    )


def _describe_env(
    env_id: str, env_kwargs: Mapping[str, Any] | None, rollout_steps: int
) -> tuple[tuple[str, ...] | None, tuple[str, ...], float]:
    """Return observation names, action names and control period (seconds) of ``env_id``."""
    env_kwargs = dict(_default_env_kwargs(env_id) if env_kwargs is None else env_kwargs)
    with _mujoco_warnings_to_logging():
        env = _make_env(env_id, env_kwargs, rollout_steps)
        try:
            observation_names, action_names = _feature_names(env)
            sampling_period = float(env.unwrapped.dt)
        finally:
            env.close()
    return observation_names, action_names, sampling_period
