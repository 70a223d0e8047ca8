"""WORK_DIR/last.pt, the resume state: everything needed to resume (trainable tensors, optimiser, scheduler, scaler, progress).

No random state is stored: every random draw of training is a function of (seed, epoch, step or
index), so the resumed run draws the same numbers without it. The file is replaced atomically, so
a run killed while writing it keeps the previous one.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..fileio import write_atomic
from ..model import adapter_state_dict, load_adapter_state


def save_last(path: Path, model, optimizer, scheduler, scaler, progress: dict) -> None:
    payload = {
        "model": adapter_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "progress": progress,
    }
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_last(path: Path, model, optimizer, scheduler, scaler) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"{path}: cannot resume from this file ({error}); "
                        "delete it to start over or point --work-dir at another run") from None
    load_adapter_state(model, payload["model"], str(path))
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    return payload["progress"]
