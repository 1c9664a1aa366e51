"""Road geometry: generation limits, clothoid continuity, integration and projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from torchlnn.driving.road import Centreline, RoadConfig, generate_road


@pytest.mark.parametrize("seed", range(20))
def test_generated_road_within_design_limits(seed):
    config = RoadConfig()
    centreline, segments = generate_road(2000.0, np.random.default_rng(seed), config)

    assert centreline.length >= 2000.0
    assert np.abs(centreline.curvature).max() <= 1.0 / config.min_radius + 1e-9
    assert np.degrees(np.abs(centreline.heading)).max() <= config.max_heading_deg + 1e-6
    # The heading bound keeps the road advancing eastwards, so it never crosses itself.
    assert np.all(np.diff(centreline.x) > 0)
    assert segments[0].kind == "straight"


def test_road_has_curves_of_realistic_radius():
    curvatures = np.concatenate([
        generate_road(2000.0, np.random.default_rng(seed))[0].curvature for seed in range(10)
    ])
    radius = 1.0 / np.abs(curvatures[np.abs(curvatures) > 1e-6])

    assert radius.min() >= 60.0
    # A good share of the road is curved, not almost straight.
    assert np.mean(np.abs(curvatures) > 1.0 / 600.0) > 0.3


def test_clothoids_make_curvature_continuous():
    config = RoadConfig()
    centreline, segments = generate_road(3000.0, np.random.default_rng(3), config)
    jumps = np.abs(np.diff(centreline.curvature))
    largest_rate = config.curvature_rate[1]

    assert jumps.max() <= largest_rate * config.sample_step * 1.0001
    assert any(segment.kind == "clothoid" for segment in segments)
    assert any(segment.kind == "arc" for segment in segments)


def test_heading_and_position_follow_curvature():
    centreline, _ = generate_road(1500.0, np.random.default_rng(4))
    step = centreline.step

    heading_rate = np.diff(centreline.heading) / step
    mean_curvature = 0.5 * (centreline.curvature[1:] + centreline.curvature[:-1])
    np.testing.assert_allclose(heading_rate, mean_curvature, atol=1e-12)

    chord_heading = np.arctan2(np.diff(centreline.y), np.diff(centreline.x))
    middle = 0.5 * (centreline.heading[1:] + centreline.heading[:-1])
    np.testing.assert_allclose(chord_heading, middle, atol=1e-9)


def test_constant_curvature_closes_a_circle():
    radius = 50.0
    step = 0.25
    count = int(round(2 * math.pi * radius / step))
    step = 2 * math.pi * radius / count
    circle = Centreline.from_curvature(np.full(count + 1, 1.0 / radius), step)

    assert circle.x[-1] == pytest.approx(circle.x[0], abs=1e-8)
    assert circle.y[-1] == pytest.approx(circle.y[0], abs=1e-8)
    # Positive curvature turns left: from heading east, the circle lies to the north.
    assert circle.y.max() == pytest.approx(2 * radius, abs=1e-3)


def test_generation_is_deterministic_per_seed():
    first, _ = generate_road(1000.0, np.random.default_rng(11))
    again, _ = generate_road(1000.0, np.random.default_rng(11))
    other, _ = generate_road(1000.0, np.random.default_rng(12))

    assert first == again
    assert first != other


def test_project_recovers_arc_length_and_signed_offset():
    centreline, _ = generate_road(1000.0, np.random.default_rng(5))
    rng = np.random.default_rng(0)
    for s in rng.uniform(50.0, 900.0, 20):
        lateral = float(rng.uniform(-4.0, 4.0))
        x, y, heading = centreline.offset_point(float(s), lateral)
        found_s, found_lateral, found_heading = centreline.project(x, y, s_hint=float(s) + 3.0)

        assert found_s == pytest.approx(s, abs=0.02)
        assert found_lateral == pytest.approx(lateral, abs=0.01)
        assert found_heading == pytest.approx(heading, abs=1e-3)


def test_project_offset_is_positive_to_the_left():
    straight = Centreline.from_curvature(np.zeros(401), 0.25)  # heading east along y = 0

    _, north, _ = straight.project(50.0, 1.0)
    _, south, _ = straight.project(50.0, -1.0)

    assert north == pytest.approx(1.0)
    assert south == pytest.approx(-1.0)


def test_closed_polyline_gives_loop_with_constant_curvature():
    radius = 40.0
    angles = np.linspace(0.0, 2 * math.pi, 90, endpoint=False)
    loop = Centreline.from_points(radius * np.cos(angles), radius * np.sin(angles), step=0.5,
                                  closed=True, smoothing=4.0)

    assert loop.closed
    np.testing.assert_allclose(loop.curvature, 1.0 / radius, rtol=0.005)
    s, lateral, _ = loop.project(radius - 2.0, 0.0)  # inside the loop: left of travel
    assert lateral == pytest.approx(2.0, abs=0.05)
    assert loop.wrap(loop.length + 3.0) == pytest.approx(3.0)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="max_heading_deg"):
        RoadConfig(max_heading_deg=95.0)
    with pytest.raises(ValueError, match="min_radius"):
        RoadConfig(min_radius=500.0, max_radius=100.0)
    with pytest.raises(ValueError, match="length"):
        generate_road(-1.0, np.random.default_rng(0))
