"""The renderer: textures, shadows, roadside objects and their painting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from torchlnn.driving.env import LaneKeepingEnv
from torchlnn.driving.render import _paint, _Primitives, noise_texture_pyramid


def test_texture_pyramid_levels_are_box_averages():
    levels = noise_texture_pyramid(seed=0, size=64)

    assert levels[0].shape == (64, 64)
    assert abs(float(levels[0].mean())) < 1e-5
    assert float(levels[0].std()) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(levels[1][3, 5], levels[0][6:8, 10:12].mean(), rtol=1e-5)
    assert levels[-1].shape == (1, 1)


def _shapes(**values):
    count = len(values["centre_u"])
    defaults = {"disc": np.zeros(count, bool), "bottom": np.zeros(count),
                "order": np.arange(count), "colour": np.ones((count, 3), np.float32)}
    defaults.update(values)
    return _Primitives(**{k: np.asarray(v) for k, v in defaults.items()})


def test_thin_bar_blends_by_its_width():
    frame = np.zeros((20, 20, 3), dtype=np.float32)
    _paint(frame, _shapes(centre_u=[10.25], centre_v=[5.0], half=[0.25], bottom=[15.0]))

    # Half a pixel wide over 10 rows: half of each of 10 pixels is painted.
    assert frame[..., 0].sum() == pytest.approx(5.0)
    assert frame[4, 10, 0] == 0.0
    assert frame[15, 10, 0] == 0.0


def test_near_disc_covers_far_disc():
    frame = np.zeros((30, 30, 3), dtype=np.float32)
    red = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    _paint(frame, _shapes(disc=[True, True], centre_u=[15.0, 15.0], centre_v=[15.0, 15.0],
                          half=[8.0, 4.0], order=[0, 1], colour=red))

    centre = frame[15, 15]
    assert centre[2] > 0.9  # the nearer (blue) disc is on top
    assert centre[0] == 0.0
    assert frame[15, 9, 0] > 0.9  # the far (red) disc shows around it
    # The rim of the near disc blends with the far disc behind it, not the black background.
    rim = frame[15, 11]
    assert rim.sum() > 0.9


def test_shadows_only_darken_the_ground():
    env = LaneKeepingEnv()
    env.reset(seed=11)
    renderer = env.renderer
    shaded_frames, lit_frames = [], []
    shadow = env.scenery.shadow
    assert shadow.min() < 0.5  # this road has shadows
    for s in np.arange(20.0, 600.0, 20.0):
        x, y, heading = env.centreline.offset_point(float(s), 0.0)
        env.scenery.shadow = shadow
        renderer.set_scene(env.centreline, env.scenery)
        shaded_frames.append(renderer.render(x, y, heading, float(s)).astype(np.int32))
        env.scenery.shadow = np.ones_like(shadow)
        renderer.set_scene(env.centreline, env.scenery)
        lit_frames.append(renderer.render(x, y, heading, float(s)).astype(np.int32))
    shaded, lit = np.stack(shaded_frames), np.stack(lit_frames)
    ground = slice(renderer.rays.first_ground_row, None)

    assert np.all(shaded[:, ground] <= lit[:, ground] + 1)
    assert (lit[:, ground] - shaded[:, ground]).max() > 40


def test_roadside_objects_are_drawn():
    env = LaneKeepingEnv()
    env.reset(seed=0)
    objects = env.scenery.objects
    assert len(objects.s) > 0
    trees = objects.s[objects.kind == 0]
    s = float(trees[len(trees) // 2] - 30.0)
    x, y, heading = env.centreline.offset_point(s, 0.0)
    with_objects = env.renderer.render(x, y, heading, s)

    env.scenery.objects = dataclasses.replace(
        objects, **{f.name: getattr(objects, f.name)[:0] for f in dataclasses.fields(objects)})
    without = env.renderer.render(x, y, heading, s)

    assert np.any(with_objects != without)
    assert np.all(np.diff(objects.s) >= 0)  # sorted for the view search
