"""Package metadata and public import paths."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys

import torch

import torchlnn


def test_public_classes_import_from_documented_paths():
    code = (
        "import torchlnn; torchlnn.LTC; torchlnn.CfC; torchlnn.LTCCell; torchlnn.CfCCell; "
        "torchlnn.wirings.AutoNCP; torchlnn.wirings.NCP; torchlnn.wirings.FullyConnected; "
        "torchlnn.wirings.Random; torchlnn.wirings.Wiring; "
        "from torchlnn import LTC, CfC, LTCCell, CfCCell, WiredCfCCell; "
        "from torchlnn.wirings import AutoNCP, NCP; "
        "from torchlnn.interop.ncps import from_ncps"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_one_version_from_metadata():
    assert torchlnn.__version__ == importlib.metadata.version("torchlnn")


def test_core_dependencies_are_torch_and_numpy_with_minimum_torch():
    requirements = importlib.metadata.requires("torchlnn")
    core = [r for r in requirements if "extra ==" not in r]
    names = sorted(re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in core)
    assert names == ["numpy", "torch"]
    torch_requirement = next(r for r in core if r.lower().startswith("torch"))
    minimum = re.search(r">=\s*([\d.]+)", torch_requirement).group(1)
    installed = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])
    assert installed >= tuple(int(p) for p in minimum.split(".")[:2])


def test_import_does_not_load_optional_packages():
    code = (
        "import sys, torchlnn, torchlnn.wirings, torchlnn.interop.ncps\n"
        "heavy = {'matplotlib', 'lightning', 'gymnasium', 'ncps', 'onnx', 'sklearn'}\n"
        "loaded = heavy & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
