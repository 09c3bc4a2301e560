"""Lets ``import torchvision`` work beside the CPU build of torch that autocompress pins.

PyPI's torchvision wheel for torch 2.13.0 is a CUDA build: its C++ operators (``nms``,
``roi_align`` ...) cannot load beside the CPU torch, and ``import torchvision`` then fails
registering ``torchvision::nms``. Its model code (ResNet, MobileNet, ViT ...) is pure Python and
needs none of them. ``allow_torchvision_models()`` loads torchvision's operators if they load; if they do not, it declares the two operators whose absence
breaks the import, so the models import and run while the detection operators stay unavailable
(calling one raises). It does nothing when torchvision is not installed or is already imported.
Importing autocompress calls ``before_torchvision()``: the fix runs now if torch is loaded, else
just before torchvision is first imported, so ``import autocompress`` alone loads no torch (a
run is read without it).

Example:
    >>> allow_torchvision_models() in (True, False)   # True when it had to declare the operators
    True
    >>> allow_torchvision_models()   # idempotent: never twice
    False
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_declared: list = []  # the Library fragment is kept alive here: it unregisters when collected


def _operators_file() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return next(iter(sorted(folder.glob("_C*.so"))), None)


def allow_torchvision_models() -> bool:
    """Make ``import torchvision`` work for its models (see the module docstring). Returns True
    when its own operators could not load and placeholders were declared (once per process)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _FirstTorchvisionImport)]  # once: importing
    import torch  # torch may itself look for torchvision

    if "torchvision" in sys.modules or _declared or hasattr(torch.ops.torchvision, "nms"):
        return False
    library = _operators_file()
    if library is None:
        return False
    try:
        torch.ops.load_library(str(library))
        return False
    except (OSError, RuntimeError):
        pass
    fragment = torch.library.Library("torchvision", "DEF")
    fragment.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    fragment.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _declared.append(fragment)
    return True


class _FirstTorchvisionImport(importlib.abc.MetaPathFinder):
    """Runs ``allow_torchvision_models`` once, as ``torchvision`` is about to be imported; the
    import itself is left to the usual finders."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            allow_torchvision_models()  # takes this finder off sys.meta_path first
        return None


def before_torchvision() -> None:
    """Make ``import torchvision`` work, now (torch already loaded) or on its first import."""
    if "torch" in sys.modules or "torchvision" in sys.modules:
        allow_torchvision_models()
    elif not any(isinstance(finder, _FirstTorchvisionImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FirstTorchvisionImport())
