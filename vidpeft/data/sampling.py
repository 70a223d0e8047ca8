"""Which frames and which pixels make a clip.

Temporal sampling (indices into a video of `num_frames` frames):
- dense: `frames` frames `stride` apart from `start`; past the end the last frame repeats.
- segment: the video is cut into `frames` equal segments and one frame is taken from each,
  at a fraction `offset` of the segment (0.5 = its centre).
Training draws the start (dense) or the offsets (segment) at random; testing takes K clips
evenly spaced: clip k sits at (k + 0.5) / K of the range of valid starts (dense) or of each
segment (segment). With K = 1 both give the centre clip.

Spatial test crops: resize the short side to the crop size, then take C crops evenly spaced
along the long side (C = 3: left/centre/right, or top/centre/bottom; C = 1: the centre).
"""
from __future__ import annotations

import numpy as np


def dense_indices(num_frames: int, frames: int, stride: int, start: int | np.ndarray) -> np.ndarray:
    """`frames` indices `stride` apart from `start`, clipped to the last frame (a column of
    starts gives one row per start)."""
    return np.minimum(start + stride * np.arange(frames), num_frames - 1)


def dense_span(frames: int, stride: int) -> int:
    """Number of video frames a dense clip covers."""
    return (frames - 1) * stride + 1


def random_dense_indices(num_frames: int, frames: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """A dense clip from a start drawn uniformly among the starts that fit (0 if none fits)."""
    last_start = max(num_frames - dense_span(frames, stride), 0)
    return dense_indices(num_frames, frames, stride, int(rng.integers(0, last_start + 1)))


def dense_test_indices(num_frames: int, frames: int, stride: int, clips: int) -> np.ndarray:
    """(clips, frames) indices of K dense clips evenly spaced over the valid starts."""
    starts_available = max(num_frames - dense_span(frames, stride) + 1, 1)
    starts = (starts_available * (np.arange(clips) + 0.5) / clips).astype(np.int64)
    return dense_indices(num_frames, frames, stride, starts[:, None])


def segment_indices(num_frames: int, frames: int, offsets: np.ndarray | float | None = None) -> np.ndarray:
    """One frame per segment, at fraction `offsets` (per segment or shared; None = centre) of it."""
    offsets = 0.5 if offsets is None else np.asarray(offsets, dtype=np.float64)
    segment = num_frames / frames
    positions = np.floor(segment * (np.arange(frames) + offsets)).astype(np.int64)
    return np.clip(positions, 0, num_frames - 1)


def random_segment_indices(num_frames: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """One frame drawn uniformly inside each segment (TSN-style training sampling)."""
    return segment_indices(num_frames, frames, rng.random(frames))


def segment_test_indices(num_frames: int, frames: int, clips: int) -> np.ndarray:
    """(clips, frames) indices: clip k takes each segment's frame at (k + 0.5) / K of it."""
    return np.stack([segment_indices(num_frames, frames, (k + 0.5) / clips) for k in range(clips)])


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) after resizing the short side to `short_side`, keeping the aspect ratio
    (the long side is truncated, as torchvision does)."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def spatial_crops(height: int, width: int, crop: int, crops: int) -> list[tuple[int, int]]:
    """(top, left) of `crops` square crops of side `crop` in the frame resized so that its
    short side is `crop`; ordered left→right (landscape) or top→bottom (portrait)."""
    if crops < 1:
        raise ValueError(f"crops must be at least 1, got {crops}")
    new_height, new_width = resized_size(height, width, crop)
    room = max(new_height, new_width) - crop
    offsets = [room // 2] if crops == 1 else [c * room // (crops - 1) for c in range(crops)]
    if new_width >= new_height:
        return [(0, offset) for offset in offsets]
    return [(offset, 0) for offset in offsets]
