"""Small real videos whose pixels say where they come from, for tests and benchmarks.

Frame i shows its number in binary as horizontal bands (band b, from the top, is white in
the green channel when bit b of i is set) and a left-to-right ramp in the red channel, so a
decoded frame tells its index (`frame_number`) and a crop tells its horizontal position
(`red_level`), through lossy H.264/VP9 coding.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

BITS = 8  # up to 256 frames


def counter_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 frames carrying their index and a red ramp."""
    if num_frames > 2**BITS or height < 4 * BITS:
        raise ValueError(f"at most {2**BITS} frames and a height of at least {4 * BITS} px")
    bands = np.arange(height) * BITS // height  # band of every row
    bits = (np.arange(num_frames)[:, None] >> bands[None, :]) & 1  # (frames, rows)
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 1] = (bits * 255).astype(np.uint8)[:, :, None]
    frames[..., 0] = np.linspace(0, 255, width).astype(np.uint8)
    return frames


def frame_number(frame: torch.Tensor | np.ndarray) -> int:
    """The index drawn into a (H, W, 3) frame by `counter_frames` (read at band centres)."""
    frame = np.asarray(frame)
    height = frame.shape[0]
    rows = ((np.arange(BITS) + 0.5) * height / BITS).astype(int)
    bits = frame[rows, :, 1].astype(np.float64).mean(axis=1) > 127
    return int((bits * (1 << np.arange(BITS))).sum())


def red_level(frame: torch.Tensor | np.ndarray) -> float:
    """Mean red value of a (H, W, 3) frame: grows with the horizontal position of a crop."""
    return float(np.asarray(frame)[..., 0].astype(np.float64).mean())


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: int = 25, codec: str = "libx264",
                options: dict[str, str] | None = None) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (an array (T, H, W, 3) or any iterable) with PyAV
    (yuv420p, codec `options` such as {"crf": "23"}); the file appears only when complete."""
    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    partial = path.with_name(path.name + ".partial" + path.suffix)
    with av.open(str(partial), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in itertools.chain([first], frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    partial.replace(path)
    return path
