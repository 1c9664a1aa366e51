"""torchlnn: liquid neural networks for PyTorch.

Liquid time-constant (LTC) and closed-form continuous-time (CfC) cells, neural circuit policy
(NCP) wirings, and sequence layers whose names and call signatures match the ``ncps`` package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("torchlnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
