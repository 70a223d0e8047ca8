"""W/last.pt: everything needed to resume (trainable tensors, optimiser, scheduler, scaler, RNG)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import write_atomic
from ..model import adapter_state_dict, load_adapter_state


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_last(path: Path, model, optimizer, scheduler, scaler, progress: dict) -> None:
    payload = {
        "model": adapter_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": _plain_rng(rng_state()),
        "progress": progress,
    }
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def _plain_rng(state: dict[str, Any]) -> dict[str, Any]:
    # weights_only loading accepts tensors, lists and numbers, not numpy arrays: store numpy's
    # Mersenne state as a list.
    kind, keys, pos, has_gauss, cached = state["numpy"]
    return {**state, "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": [state["python"][0], list(state["python"][1]), state["python"][2]]}


def load_last(path: Path, model, optimizer, scheduler, scaler) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise RuntimeError(f"{path}: cannot resume from this file ({error}); "
                           "delete it to start over or point --work-dir at another run") from None
    load_adapter_state(model, payload["model"], str(path))
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    rng = payload["rng"]
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    set_rng_state({**rng, "numpy": (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached),
                   "python": (rng["python"][0], tuple(rng["python"][1]), rng["python"][2])})
    return payload["progress"]
