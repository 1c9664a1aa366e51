"""The training engine: Lightning modules, data modules, run folders and resume.

Needs the ``train`` extra (``pip install "torchlnn[train]"``). See docs/training.md.
"""

from torchlnn.training.config import (
    TrainConfig,
    add_config_arguments,
    config_from_args,
    config_hash,
)
from torchlnn.training.datamodule import SequenceDataModule, SplitsDataModule
from torchlnn.training.models import (
    MODEL_NAMES,
    TIME_AWARE,
    SequenceModel,
    build_sequence_model,
    count_parameters,
)
from torchlnn.training.module import SequenceTask, classification_task, regression_task
from torchlnn.training.run import (
    RunResult,
    environment_info,
    flushing_denormals,
    load_result,
    train_and_test,
)

__all__ = [
    "MODEL_NAMES",
    "TIME_AWARE",
    "RunResult",
    "SequenceDataModule",
    "SequenceModel",
    "SequenceTask",
    "SplitsDataModule",
    "TrainConfig",
    "add_config_arguments",
    "build_sequence_model",
    "classification_task",
    "config_from_args",
    "config_hash",
    "count_parameters",
    "environment_info",
    "load_result",
    "regression_task",
    "train_and_test",
    "flushing_denormals",
]
