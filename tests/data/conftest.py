"""Fixtures for the data loader tests: every test here runs with the network blocked."""

from __future__ import annotations

import socket

import pytest


class NetworkBlockedError(RuntimeError):
    """Raised when a data test tries to open a network connection."""


def _blocked(*args, **kwargs):
    raise NetworkBlockedError(f"A data loader tried to use the network: {args!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every connection attempt, DNS lookup and datagram send raise NetworkBlockedError."""
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket.socket, "sendto", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked)


@pytest.fixture(scope="session")
def mujoco_available() -> None:
    """Skip the test unless gymnasium can build a MuJoCo environment here."""
    try:
        import gymnasium

        env = gymnasium.make("Walker2d-v5")
        env.close()
    except Exception as error:  # any failure means MuJoCo cannot run on this machine
        pytest.skip(f"MuJoCo environments cannot run here: {type(error).__name__}: {error}")
