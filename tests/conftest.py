"""Shared pytest fixtures for the whole suite."""

from __future__ import annotations

import socket

import pytest
import torch

# The tests use small tensors, for which one thread is fastest; two threads on a busy 2-core
# machine made some steps hundreds of times slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Give every test the same global torch seed, so failures reproduce."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a network connection fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield
