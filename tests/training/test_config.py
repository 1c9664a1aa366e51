from __future__ import annotations

import argparse
import dataclasses

import pytest

from torchlnn.experiments.specs import ExperimentConfig
from torchlnn.training.config import (
    TrainConfig,
    add_config_arguments,
    config_from_args,
    config_hash,
)


def parse(argv: list[str], config_class: type = TrainConfig):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, config_class)
    return config_from_args(config_class, parser.parse_args(argv))


def test_defaults_without_options():
    assert parse([]) == TrainConfig()


def test_overrides_are_typed():
    config = parse(
        ["--epochs", "7", "--lr", "0.01", "--grad-clip", "2.5", "--optimizer", "rmsprop"]
    )
    assert config.epochs == 7
    assert config.lr == 0.01
    assert config.grad_clip == 2.5
    assert config.optimizer == "rmsprop"


def test_optional_field_accepts_none():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    args = parser.parse_args(["--grad-clip", "none"])
    config = config_from_args(TrainConfig, args, grad_clip=1.0)
    assert config.grad_clip is None


def test_base_values_yield_to_options():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig)
    config = config_from_args(TrainConfig, parser.parse_args(["--seed", "3"]), seed=1, epochs=4)
    assert config.seed == 3
    assert config.epochs == 4


def test_bool_and_literal_are_checked():
    assert parse(["--progress-bar", "false"]).progress_bar is False
    with pytest.raises(SystemExit):
        parse(["--optimizer", "sgd"])
    with pytest.raises(SystemExit):
        parse(["--deterministic", "maybe"])


def test_subclass_fields_become_options():
    config = parse(["--units", "12", "--max-samples", "40"], ExperimentConfig)
    assert config.units == 12
    assert config.max_samples == 40


def test_hash_ignores_display_fields():
    base = TrainConfig()
    assert config_hash(base) == config_hash(dataclasses.replace(base, progress_bar=False))
    assert config_hash(base) == config_hash(dataclasses.replace(base, runs_root="elsewhere"))
    assert config_hash(base) != config_hash(dataclasses.replace(base, seed=1))
    assert config_hash(base) != config_hash(dataclasses.replace(base, lr=0.5))
