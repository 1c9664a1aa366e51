"""The papers' experiments: data, models, hyperparameters and the numbers the papers report.

Each ``ExperimentSpec`` gives the settings to train every model of
``torchlnn.training.MODEL_NAMES`` on one task with the protocol of the LTC paper (Hasani et
al., AAAI 2021) or the CfC paper (Hasani et al., Nature Machine Intelligence 2022), and the
test metric its result table compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from torchlnn.training.config import TrainConfig


@dataclass
class ExperimentConfig(TrainConfig):
    """A ``TrainConfig`` plus what the experiment runner needs to build the model and data."""

    # Experiment name (see torchlnn.experiments.EXPERIMENTS).
    experiment: str = "halfcheetah"
    # Model name (see torchlnn.training.MODEL_NAMES).
    model: str = "ltc"
    # Recurrent neurons.
    units: int = 32
    # JSON object of extra keyword arguments for the recurrent layer.
    model_options: str = "{}"
    # JSON object of keyword arguments for the data loader.
    loader_options: str = "{}"
    # Factor applied to the data's timespans before they reach the model.
    timespan_scale: float = 1.0
    # Append the timespan to the inputs as a feature (for models that take no elapsed time).
    timespans_as_feature: bool = False
    # Keep only the first max_samples sequences of each split (quick runs); None keeps all.
    max_samples: int | None = None
    # Read-out size: None for the data's output size (1 turns a two-class task into one logit).
    output_size: int | None = None
    # One thread: these small models gain nothing from intra-op threads, and on a shared
    # 2-core machine two threads made a CfC epoch about 70 times slower than one.
    threads: int | None = field(default=1, metadata={"in_hash": False})


@dataclass
class PaperNumber:
    """A number a paper reports, with its spread and where it comes from."""

    mean: float
    std: float | None
    source: str


@dataclass
class ExperimentSpec:
    """One experiment: its data, the metric it reports and the settings of each model."""

    name: str
    title: str
    dataset: str
    # Test metric of the tables (a key logged by SequenceTask, e.g. "test_mse").
    metric: str
    # Factor to show the metric in the table's unit (100 for accuracy in %).
    metric_scale: float
    metric_label: str
    # Whether larger metric values are better.
    higher_is_better: bool
    # Config values shared by every model.
    common: dict[str, Any]
    # Config values per model, applied over ``common``.
    per_model: dict[str, dict[str, Any]]
    # Numbers the papers report, per model (and references that are not models).
    paper: dict[str, PaperNumber] = field(default_factory=dict)
    references: dict[str, PaperNumber] = field(default_factory=dict)
    protocol: str = ""
    differences: list[str] = field(default_factory=list)

    def config_for(self, model: str, seed: int) -> ExperimentConfig:
        """Return the experiment's default config for ``model`` and ``seed``."""
        from torchlnn.training.models import MODEL_NAMES, TIME_AWARE

        if model not in MODEL_NAMES:
            raise ValueError(f"Unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}.")
        values: dict[str, Any] = {"task": self.name, "experiment": self.name, "model": model}
        values.update(self.common)
        values.update(self.per_model.get(model, {}))
        values["seed"] = seed
        for key in ("model_options", "loader_options"):
            if isinstance(values.get(key), dict):
                values[key] = json.dumps(values[key], sort_keys=True)
        if values.pop("time_feature_for_discrete", False) and model not in TIME_AWARE:
            values["timespans_as_feature"] = True
        return ExperimentConfig(**values)


LTC_PAPER = "LTC paper (Hasani et al., AAAI 2021), HalfCheetah kinematic modelling"
CFC_PAPER = "CfC paper (Hasani et al., Nature Machine Intelligence 2022), event-based XOR"
CFC_CODE = "raminmh/CfC, tests/train_xor.py, comment beside the config"

HALFCHEETAH = ExperimentSpec(
    name="halfcheetah",
    title="HalfCheetah kinematic modelling (LTC paper protocol)",
    dataset="halfcheetah",
    metric="test_mse",
    metric_scale=1.0,
    metric_label="test MSE",
    higher_is_better=False,
    common={
        "units": 32,
        "batch_size": 16,
        "epochs": 200,
        "optimizer": "adam",
        "lr": 1e-3,
        "monitor": "valid_mse",
        "monitor_mode": "min",
    },
    per_model={"ltc": {"lr": 1e-2}},
    paper={
        "ltc": PaperNumber(2.308, None, LTC_PAPER),
        "lstm": PaperNumber(2.500, None, LTC_PAPER),
    },
    references={
        "linear one-step least squares (same split)": PaperNumber(
            3.432, None, "computed by tests/data/test_data_halfcheetah.py"
        ),
    },
    protocol=(
        "31 recorded traces; traces 15-24 train, 0-4 validation, 5-14 test; windows of 32 "
        "steps every 10 steps; next-step prediction of all 17 values, no normalisation. "
        "32 recurrent units and a linear read-out to 17; MSE; batch 16; Adam with lr 0.01 "
        "for LTC and 0.001 for the other models; 200 epochs; the test MSE of the epoch with "
        "the lowest validation MSE."
    ),
)

# The CfC paper's XOR settings come from raminmh/CfC, tests/train_xor.py (read, not copied).
# That script uses RMSprop with batch 128 (Adam with batch 256 for the pure CfC and LTC), a
# learning rate decayed by a factor per epoch, gradient-norm clipping and a small weight
# decay. It trains 200 epochs with one logit and binary cross-entropy, and divides the
# elapsed times by the pad size 32.
XOR_EVENT = ExperimentSpec(
    name="xor",
    title="Event-based bit-stream XOR (CfC paper)",
    dataset="xor",
    metric="test_accuracy",
    metric_scale=100.0,
    metric_label="test accuracy (%)",
    higher_is_better=True,
    common={
        "loader_options": {"encoding": "event"},
        "timespan_scale": 1.0 / 32.0,
        "time_feature_for_discrete": True,
        "output_size": 1,
        "epochs": 200,
        "monitor": "valid_accuracy",
        "monitor_mode": "max",
        "units": 64,
        "batch_size": 256,
        "optimizer": "adam",
        "lr": 5e-3,
        "lr_decay": 0.9,
        "grad_clip": 5.0,
        "weight_decay": 3e-5,
    },
    per_model={
        "cfc": {
            "units": 192,
            "batch_size": 128,
            "optimizer": "rmsprop",
            "lr": 0.05,
            "lr_decay": 0.95,
            "grad_clip": 1.0,
            "weight_decay": 3e-6,
            "model_options": {"backbone_units": 128, "backbone_layers": 1, "activation": "relu"},
        },
        "cfc-mixed": {
            "units": 64,
            "batch_size": 128,
            "optimizer": "rmsprop",
            "lr": 5e-3,
            "lr_decay": 0.95,
            "grad_clip": 10.0,
            "weight_decay": 2e-6,
            "model_options": {"backbone_units": 128, "backbone_layers": 1, "activation": "relu"},
        },
        "cfc-nogate": {
            "units": 128,
            "batch_size": 128,
            "optimizer": "rmsprop",
            "lr": 5e-3,
            "lr_decay": 0.95,
            "grad_clip": 10.0,
            "weight_decay": 5e-6,
            "model_options": {
                "backbone_units": 192,
                "backbone_layers": 1,
                "backbone_dropout": 0.3,
                "activation": "silu",
            },
        },
        "cfc-pure": {
            "model_options": {"backbone_units": 64, "backbone_layers": 1, "activation": "silu"},
        },
        "ltc": {"model_options": {"ode_unfolds": 6}},
    },
    paper={
        "cfc": PaperNumber(99.42, 0.42, CFC_PAPER),
        "cfc-mixed": PaperNumber(99.72, 0.08, CFC_PAPER),
        "ltc": PaperNumber(49.11, 0.00, CFC_PAPER),
        "cfc-nogate": PaperNumber(96.29, 1.61, CFC_CODE),
        "cfc-pure": PaperNumber(85.42, 2.84, CFC_CODE),
    },
    protocol=(
        "Random bit streams of length 2 to 31, label = parity; event encoding (one step per "
        "change of bit, elapsed steps as timespans divided by 32), padded to 32; 100,000 "
        "training and 10,000 test streams plus 10,000 validation streams. One logit, binary "
        "cross-entropy. Per-model optimiser settings follow the CfC repository's XOR script; "
        "LSTM, GRU and CT-RNN (not in the paper's XOR table) use the LTC settings. The LSTM "
        "and the GRU get the timespan as an extra input feature, while the CT-RNN, like the "
        "LTC and the CfCs, takes it as the length of its time step."
    ),
    differences=[
        "The paper reports the test accuracy after the last epoch; we report it at the epoch "
        "with the best validation accuracy (the paper has no validation split).",
        "The paper's configurations list a forget-gate bias (1.2 for CfC, 0.6 mixed, 4.7 "
        "no-gate), but its CfC cell does not read it: only the mixed-memory LSTM adds it to its "
        "forget gate. torchlnn's mixed-memory LSTM adds 1, as ncps does.",
        "Weight decay is the optimiser's L2 term, not a Keras kernel regulariser.",
        "Gradient clipping bounds the global norm over all parameters; the paper's Keras "
        "clipnorm bounds the norm of each weight tensor separately.",
    ],
)

SPEED = ExperimentSpec(
    name="speed",
    title="Seconds per training epoch, CfC against LTC with 6 unfolds (HalfCheetah task)",
    dataset="halfcheetah",
    metric="test_mse",
    metric_scale=1.0,
    metric_label="test MSE (after a few epochs, for reference only)",
    higher_is_better=False,
    common={
        "units": 32,
        "batch_size": 16,
        "epochs": 3,
        "optimizer": "adam",
        "lr": 1e-3,
        "monitor": "valid_mse",
        "monitor_mode": "min",
    },
    per_model={"ltc": {"lr": 1e-2, "model_options": {"ode_unfolds": 6}}},
    protocol=(
        "Same data, batch size (16), units (32) and read-out as the HalfCheetah experiment; "
        "the training loop of each epoch is timed (no validation) with one torch thread. "
        "The two models run one after the other on the same machine, so other load on the "
        "machine affects both; the load average is listed with each run."
    ),
)

EXPERIMENTS: dict[str, ExperimentSpec] = {
    spec.name: spec for spec in (HALFCHEETAH, XOR_EVENT, SPEED)
}
