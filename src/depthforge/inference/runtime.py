"""The packages an export runs on, imported on first use: one line naming what to install where one is missing
or broken (they are dependencies, but a platform without their wheels or a trimmed install may lack them)."""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import DepthforgeError, error_line

RUNTIMES = ("torch", "onnxruntime", "openvino")
PIP = {"onnxruntime": "onnxruntime (onnxruntime-gpu for CUDA)", "openvino": "openvino", "onnx": "onnx onnxscript"}


def need(package: str) -> ModuleType:
    """``import package``, or one line: "runtime openvino is not installed: pip install openvino"."""
    what = f"runtime {package}" if package in RUNTIMES else f"package {package} (ONNX export)"
    try:
        return importlib.import_module(package)
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == package:
            raise DepthforgeError(f"{what} is not installed: pip install {PIP[package]}") from None
        # installed but broken (a missing shared library, a wrong wheel): the reason, then the cure
        raise DepthforgeError(f"{what} does not import ({error_line(e)}): pip install --force-reinstall "
                              f"{PIP[package]}") from None
