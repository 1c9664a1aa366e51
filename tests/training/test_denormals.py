"""Flushing subnormal floats while training: on inside the block, restored after it."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")

from lightning.pytorch import Callback  # noqa: E402

from torchlnn.experiments.runner import build_run, get_spec  # noqa: E402
from torchlnn.training import flushing_denormals, train_and_test  # noqa: E402

SUBNORMAL = 1e-39  # below float32's smallest normal number, about 1.2e-38


def flushed() -> bool:
    return bool(torch.tensor(SUBNORMAL) * 1.0 == 0)


@pytest.fixture
def not_flushing():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormal floats")
    yield
    torch.set_flush_denormal(False)


def test_flushing_applies_inside_block(not_flushing):
    assert not flushed()

    with flushing_denormals():
        assert flushed()

    assert not flushed()


def test_flushing_disabled_changes_nothing(not_flushing):
    with flushing_denormals(enabled=False):
        assert not flushed()


def test_flushing_restored_after_error(not_flushing):
    with pytest.raises(RuntimeError), flushing_denormals():
        raise RuntimeError("stop")

    assert not flushed()


def test_flushing_keeps_earlier_setting(not_flushing):
    torch.set_flush_denormal(True)

    with flushing_denormals():
        assert flushed()

    assert flushed()  # it was on before the block, so it stays on


class FlushProbe(Callback):
    """Record at the start of each training epoch whether subnormal floats are flushed."""

    def __init__(self):
        self.seen: list[bool] = []

    def on_train_epoch_start(self, trainer, module):
        self.seen.append(flushed())


@pytest.mark.parametrize("enabled", [True, False])
def test_training_follows_config(tmp_path, not_flushing, enabled):
    spec = get_spec("xor")
    config = spec.config_for("cfc", 0)
    config.units, config.epochs, config.batch_size = 4, 1, 8
    config.loader_options = '{"encoding": "event", "num_train": 16, "num_valid": 8, "num_test": 8}'
    config.runs_root, config.progress_bar = str(tmp_path), False
    config.flush_denormal = enabled
    probe = FlushProbe()

    train_and_test(config, lambda: build_run(spec, config), callbacks=[probe])

    assert probe.seen == [enabled]
    assert not flushed()
