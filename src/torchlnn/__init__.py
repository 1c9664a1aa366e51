"""torchlnn: liquid neural networks for PyTorch.

Liquid time-constant (LTC) and closed-form continuous-time (CfC) cells, neural circuit policy
(NCP) wirings, and sequence layers whose names and call signatures match the ncps package::

    import torchlnn
    from torchlnn.wirings import AutoNCP

    rnn = torchlnn.CfC(input_size=20, units=AutoNCP(28, 4))
"""

from importlib.metadata import PackageNotFoundError, version

from . import solvers, wirings
from ._io import load, save
from .cells import CfCCell, LTCCell, WiredCfCCell
from .layers import LTC, CfC

try:
    __version__ = version("torchlnn")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "LTC",
    "CfC",
    "LTCCell",
    "CfCCell",
    "WiredCfCCell",
    "wirings",
    "solvers",
    "save",
    "load",
    "__version__",
]
