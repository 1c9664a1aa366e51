"""Kinematic bicycle: exact arcs, sign of steering, actuator lag and limits."""

from __future__ import annotations

import math

import pytest

from torchlnn.driving.vehicle import KinematicBicycle, VehicleConfig


def test_constant_curvature_drives_a_circle():
    config = VehicleConfig(steer_time_constant=0.0, speed=10.0, dt=0.05)
    car = KinematicBicycle(config)
    curvature = 1.0 / 40.0
    steps = int(round(2 * math.pi * 40.0 / (config.speed * config.dt)))

    positions = []
    for _ in range(steps):
        car.step(curvature)
        positions.append((car.x, car.y))

    centre = (0.0, 40.0)  # starting at the origin heading east, a left turn circles (0, 40)
    for x, y in positions:
        assert math.hypot(x - centre[0], y - centre[1]) == pytest.approx(40.0, abs=1e-9)


def test_positive_curvature_turns_left():
    car = KinematicBicycle(VehicleConfig(steer_time_constant=0.0))
    for _ in range(30):
        car.step(0.02)

    assert car.yaw > 0.0
    assert car.y > 0.0


def test_steering_follows_first_order_lag():
    config = VehicleConfig(steer_time_constant=0.1, dt=1.0 / 30.0)
    car = KinematicBicycle(config)
    target = math.atan(config.wheelbase * 0.05)
    for _ in range(6):
        car.step(0.05)

    expected = target * (1.0 - math.exp(-6 * config.dt / 0.1))
    assert car.steer == pytest.approx(expected, rel=1e-12)


def test_steering_is_limited_to_lock():
    config = VehicleConfig(steer_time_constant=0.0)
    car = KinematicBicycle(config)
    car.step(10.0)

    assert car.steer == pytest.approx(math.radians(config.max_steer_deg))
    assert car.curvature == pytest.approx(config.max_curvature)


def test_place_puts_body_centre_at_point():
    car = KinematicBicycle()
    car.place(5.0, -2.0, 0.3, curvature=0.01)

    assert car.centre() == pytest.approx((5.0, -2.0))
    assert car.yaw == 0.3
    assert car.curvature == pytest.approx(0.01)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        KinematicBicycle().step(float("nan"))
    with pytest.raises(ValueError, match="speed"):
        VehicleConfig(speed=0.0)
    with pytest.raises(ValueError, match="steer_time_constant"):
        VehicleConfig(steer_time_constant=-1.0)
