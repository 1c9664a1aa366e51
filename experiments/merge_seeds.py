"""Merge one model's result rows from separate ``torchlnn experiment`` calls into one row.

A row with several seeds normally comes from one call with ``--seeds 3``. Seeds can also run
at different times, in other results folders. This script combines their records into one
row. The row gets the mean and the
population standard deviation over all seeds, and its Runs list shows every command.

    python experiments/merge_seeds.py xor cfc RESULTS_DIR [RESULTS_DIR ...] --out OUT_DIR

reads ``<RESULTS_DIR>/xor.json`` for each folder, checks that the ``cfc`` rows differ only in
their seeds, and writes the merged row into ``<OUT_DIR>/xor.json`` and ``xor.md`` (other
models' rows there are kept). OUT_DIR may be one of the inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torchlnn.experiments.runner import get_spec, merge_rows, write_row


def load_row(folder: Path, name: str, model: str) -> dict:
    """Return ``model``'s row from ``<folder>/<name>.json``."""
    path = folder / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found; pass the --results-dir of a finished experiment.")
    models = json.loads(path.read_text()).get("models", {})
    if model not in models:
        raise SystemExit(
            f"{path} has no row for {model!r} (it has {', '.join(models) or 'none'}); "
            "pass the folder that holds that model's result."
        )
    return models[model]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="experiment name, e.g. xor")
    parser.add_argument("model", help="model whose rows to merge, e.g. cfc")
    parser.add_argument("folders", nargs="+", type=Path, help="results folders to read")
    parser.add_argument("--out", type=Path, required=True, help="results folder to write")
    args = parser.parse_args(argv)

    spec = get_spec(args.name)
    rows = [load_row(folder, args.name, args.model) for folder in args.folders]
    try:
        merged = merge_rows(rows)
    except ValueError as error:
        raise SystemExit(f"merge_seeds.py: {error}") from None
    path = write_row(spec, args.model, merged, args.out)
    print(f"{args.model}: seeds {merged['seeds']}, mean {merged['mean']:.4f}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
