"""Check that the network block works and that every loader runs under it.

The autouse fixture in conftest.py blocks the network for every test in this folder."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from torchlnn.data import load

BLOCKED = "tried to use the network"


def test_block_stops_connections():
    with pytest.raises(RuntimeError, match=BLOCKED):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw,
        pytest.raises(RuntimeError, match=BLOCKED),
    ):
        raw.connect(("127.0.0.1", 9))
    with pytest.raises(RuntimeError, match=BLOCKED):
        socket.getaddrinfo("example.org", 443)


def test_block_stops_http():
    with pytest.raises(Exception, match=BLOCKED):
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("halfcheetah", {}),
        ("xor", {"num_train": 16, "num_valid": 16, "num_test": 16}),
        ("digits", {}),
        ("uea", {"dataset": "JapaneseVowels"}),
        ("uea", {"dataset": "BasicMotions"}),
    ],
)
def test_loader_runs_offline(name, kwargs):
    splits = load(name, **kwargs)
    assert len(splits.train) > 0


def test_mujoco_runs_offline(mujoco_available):
    splits = load("mujoco-walker2d", num_rollouts=3, rollout_steps=30, window=8, progress=False)
    assert len(splits.train) > 0
