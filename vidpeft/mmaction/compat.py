"""Fixes that let mmaction2 1.2.0 / mmengine 0.10.x run on a current PyTorch, applied narrowly.

1. The mmaction2 1.2.0 wheel lacks `mmaction/models/localizers/drn/`, yet
   `mmaction.models.localizers` imports `DRN` from it, so `import mmaction.models` fails.
   We register a placeholder module whose `DRN` raises a one-line error if anyone builds it.
2. mmaction2's VindLU (multi-modal) models do not import with transformers 5; we switch
   mmaction2's own "multi-modal dependencies missing" placeholders on for them.
3. mmengine reads local checkpoints with a bare `torch.load`; since torch 2.6 that means
   `weights_only=True` with no allow-list, so resuming fails on the numpy arrays and
   `HistoryBuffer`s mmengine itself saved. We re-register mmengine's local-file loader to
   load with `weights_only=True` and an allow-list of exactly those types, inside a
   `safe_globals` context (nothing else in the process sees the allow-list); the one
   `getattr` a HistoryBuffer pickles is served by a function that fetches nothing but
   HistoryBuffer's own statistic methods.
"""
from __future__ import annotations

import os
import pickle
import re
import sys
import types

import numpy as np
import torch

DRN_MODULE = "mmaction.models.localizers.drn"
HISTORY_STATISTICS = ("min", "max", "current", "mean")  # what HistoryBuffer registers itself


class DRN:
    """Stands in for mmaction2's DRN localizer, whose source the 1.2.0 wheel does not ship."""

    def __init__(self, *args, **kwargs) -> None:
        raise ImportError("mmaction2 1.2.0's wheel does not ship the DRN localizer "
                          "(mmaction/models/localizers/drn); install mmaction2 from source to use it")


def install_drn_placeholder() -> None:
    """Make `from .drn.drn import DRN` in mmaction.models.localizers succeed (no-op if DRN ships)."""
    import mmaction

    shipped = any(os.path.isfile(os.path.join(root, "models", "localizers", "drn", "drn.py"))
                  for root in mmaction.__path__)
    if shipped or DRN_MODULE in sys.modules:
        return
    package = types.ModuleType(DRN_MODULE)
    package.__path__ = []  # a package, so that `.drn.drn` resolves below it
    module = types.ModuleType(f"{DRN_MODULE}.drn")
    module.DRN = DRN
    package.drn = module
    sys.modules[DRN_MODULE] = package
    sys.modules[module.__name__] = module


def skip_vindlu_on_transformers_5() -> None:
    """mmaction2 imports its VindLU models whenever transformers >= 4.28 is installed, but they
    import helpers transformers 5 removed, so `import mmaction.models` fails. With
    transformers 5 we let mmaction2 register its own placeholders for them instead."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("transformers").split(".")[0])
    except PackageNotFoundError:
        return
    if major >= 5:
        import mmaction.utils.dependency

        mmaction.utils.dependency.WITH_MULTIMODAL = False


def _numpy_globals() -> list:
    """What pickled numpy arrays and scalars reference (numpy 1.x and 2.x spell it differently)."""
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 moved numpy.core
    # unpickling a dtype builds an instance of its class (numpy.dtypes.Float64DType, ...)
    dtype_classes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdFD"]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]


def _history_buffer_statistic(owner: type, name: str):
    """Stands in for `builtins.getattr` while loading: HistoryBuffer pickles its statistic
    methods as getattr(HistoryBuffer, 'mean') etc., and nothing else may be looked up."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if owner is not HistoryBuffer or name not in HISTORY_STATISTICS:
        raise pickle.UnpicklingError(f"checkpoint asks for getattr({owner!r}, {name!r}); only "
                                     f"HistoryBuffer's {', '.join(HISTORY_STATISTICS)} are allowed")
    return getattr(owner, name)


def checkpoint_safe_globals() -> list:
    """The non-tensor types mmengine puts in a checkpoint (message hub, meta, optimizer state)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    return [HistoryBuffer, (_history_buffer_statistic, "builtins.getattr"), *_numpy_globals()]


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader for local paths, with `weights_only=True` plus mmengine's own types."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename}: no such checkpoint file (check load_from / resume)")
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install_safe_checkpoint_loader() -> None:
    """Replace mmengine's local-path checkpoint loader (the '' scheme) with the one above.

    Only from torch 2.6 on, where torch.load defaults to weights_only=True and mmengine's
    bare call fails (and where safe_globals accepts the (callable, name) entries used above).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    if tuple(int(part) for part in re.findall(r"\d+", torch.__version__)[:2]) < (2, 6):
        return
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)


def apply() -> None:
    install_drn_placeholder()
    skip_vindlu_on_transformers_5()
    install_safe_checkpoint_loader()
