"""Sequence classification sets of the UEA & UCR archive that ship inside ``aeon``.

``aeon`` bundles a few archive problems as ``.ts`` files under ``aeon/datasets/data/``.
:func:`load_uea` reads those files with ``aeon.datasets.load_from_ts_file``, by path, so it
never downloads (aeon's ``load_classification`` would fetch any problem it does not find).
Which problems are bundled depends on the aeon version: :func:`available_uea_datasets` lists
them. aeon 1.6 bundles, among others, JapaneseVowels (12 channels, lengths 7 to 29, 9
speakers) and BasicMotions (6 channels, length 100, 4 activities).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from torchlnn.data._types import DatasetInfo, SequenceData, SequenceSplits
from torchlnn.data._utils import import_optional, pad_sequences, stratified_split


def _aeon_data_folder() -> Path:
    aeon_datasets = import_optional("aeon.datasets", "The UEA/UCR classification data sets")
    return Path(aeon_datasets.__file__).parent / "data"


def _problem_files(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / name / f"{name}_TRAIN.ts", folder / name / f"{name}_TEST.ts"


def _read_header(path: Path) -> tuple[str, dict[str, str]]:
    """Return the ``#`` comment text and the ``@key value`` header lines of a ``.ts`` file."""
    comments, keys = [], {}
    with path.open(encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if line.startswith("#"):
                comments.append(line.lstrip("#").strip())
            elif line.lower().startswith("@data"):
                break
            elif line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                keys[key.lower()] = value.strip()
    return " ".join(text for text in comments if text), keys


def available_uea_datasets() -> tuple[str, ...]:
    """List the classification problems bundled with the installed aeon, sorted by name.

    A problem counts when ``<name>/<name>_TRAIN.ts`` and ``<name>/<name>_TEST.ts`` exist and
    the training file declares class labels (``@classLabel true``).
    """
    folder = _aeon_data_folder()
    names = []
    for entry in sorted(folder.iterdir()):
        train_file, test_file = _problem_files(folder, entry.name)
        if not (train_file.is_file() and test_file.is_file()):
            continue
        _, keys = _read_header(train_file)
        if keys.get("classlabel", "").lower().startswith("true"):
            names.append(entry.name)
    return tuple(names)


def _to_time_major(series: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """Turn aeon's ``(channels, steps)`` series into a list of ``(steps, channels)`` arrays."""
    return [np.asarray(one, dtype=np.float64).T for one in series]


def load_uea(
    dataset: str = "JapaneseVowels",
    *,
    valid_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
) -> SequenceSplits:
    """Load a bundled UEA/UCR classification problem with padded variable-length sequences.

    The archive's test split is kept as the test split. The validation split is drawn from
    the archive's training split, per class (stratified), with a generator seeded by
    ``seed``. Class indices follow the order of the ``@classLabel`` line of the files.

    Sequences are ``(steps, channels)``. Shorter ones are padded with zeros at the end, and
    ``mask`` marks their real steps (``mask`` is None when all have the same length).
    Sampling is regular, so ``timespans`` is None. With ``standardize=True`` every channel is
    shifted and scaled by the mean and standard deviation of the real steps of the training
    split (after the validation split is taken out), before padding.

    Args:
        dataset: problem name, one of :func:`available_uea_datasets`.
        valid_fraction: fraction of each class of the archive's training split used for
            validation, in ``[0, 1)``.
        seed: seed of the validation split.
        standardize: standardise each channel with training statistics.
    """
    aeon_datasets = import_optional("aeon.datasets", "The UEA/UCR classification data sets")
    aeon = import_optional("aeon", "The UEA/UCR classification data sets")
    folder = _aeon_data_folder()
    train_file, test_file = _problem_files(folder, dataset)
    if not (train_file.is_file() and test_file.is_file()):
        raise ValueError(
            f"UEA/UCR problem {dataset!r} is not bundled with aeon {aeon.__version__}. "
            f"Bundled classification problems: {', '.join(available_uea_datasets())}."
        )

    # Reading both files by path never touches the network.
    train_series, train_labels, meta = aeon_datasets.load_from_ts_file(
        str(train_file), return_meta_data=True
    )
    test_series, test_labels = aeon_datasets.load_from_ts_file(str(test_file))
    if not meta.get("classlabel", False):
        raise ValueError(
            f"UEA/UCR problem {dataset!r} has no class labels, so it is not a classification "
            "problem."
        )
    class_names = tuple(str(value) for value in meta["class_values"])
    class_index = {name: index for index, name in enumerate(class_names)}

    def encode_labels(labels: np.ndarray, split: str) -> np.ndarray:
        unknown = sorted(set(map(str, labels)) - set(class_names))
        if unknown:
            raise ValueError(
                f"{dataset} {split} file has labels {unknown} that its @classLabel line "
                f"{class_names} does not declare."
            )
        return np.array([class_index[str(label)] for label in labels], dtype=np.int64)

    train_y = encode_labels(train_labels, "TRAIN")
    test_y = encode_labels(test_labels, "TEST")
    train_x = _to_time_major(train_series)  # list of (steps, channels)
    test_x = _to_time_major(test_series)
    if any(np.isnan(one).any() for one in (*train_x, *test_x)):
        raise ValueError(
            f"UEA/UCR problem {dataset!r} contains missing values (NaN), which load_uea does "
            "not support."
        )

    # Validation split out of the archive's training split.
    fit_indices, valid_indices, _ = stratified_split(train_y, valid_fraction, 0.0, seed)

    # Standardisation statistics from the remaining training sequences, real steps only.
    fit_steps = np.concatenate([train_x[i] for i in fit_indices])  # (steps, channels)
    mean = fit_steps.mean(axis=0) if standardize else np.zeros(fit_steps.shape[1])
    std = fit_steps.std(axis=0) if standardize else np.ones(fit_steps.shape[1])
    std = np.where(std > 0, std, 1.0)

    # All splits share the longest length of the problem, so models see one T.
    all_lengths = [one.shape[0] for one in (*train_x, *test_x)]
    max_steps = max(all_lengths)
    variable_length = min(all_lengths) != max_steps

    def build_split(series: list[np.ndarray], labels: np.ndarray) -> SequenceData:
        scaled = [(one - mean) / std for one in series]
        inputs, mask = pad_sequences(scaled, max_steps, len(mean))  # (N, T, channels), (N, T)
        return SequenceData.from_numpy(
            inputs, labels, timespans=None, mask=mask if variable_length else None
        )

    description, _ = _read_header(train_file)
    info = DatasetInfo(
        name=f"uea/{dataset}",
        task="classification",
        source=f"UEA & UCR time series archive, files bundled with aeon {aeon.__version__}",
        license=(
            "UEA & UCR archive data as redistributed by aeon (aeon itself is BSD-3-Clause); "
            "cite the archive and the problem's authors"
        ),
        num_classes=len(class_names),
        class_names=class_names,
        input_names=tuple(f"channel_{i}" for i in range(len(mean))),
        details={
            "dataset": dataset,
            "valid_fraction": valid_fraction,
            "seed": seed,
            "standardize": standardize,
            "channel_mean": mean.tolist(),
            "channel_std": std.tolist(),
            "description": description,
        },
    )
    return SequenceSplits(
        train=build_split([train_x[i] for i in fit_indices], train_y[fit_indices]),
        valid=build_split([train_x[i] for i in valid_indices], train_y[valid_indices]),
        test=build_split(test_x, test_y),
        info=info,
    )
