"""Which frames and which pixels make a clip.

Temporal sampling (indices into a video of `num_frames` frames):
- dense: `frames` frames `stride` apart from `start`; past the end the last frame repeats.
- segment: the video is cut into `frames` equal segments and one frame is taken from each,
  at a fraction `offset` of the segment (0.5 = its centre).
Training draws the start (dense) or the offsets (segment) at random ("uniform"), or as the
VideoMAE / V-PETL loaders do ("videomae", below). Testing places K clips by one of three
rules (`TEST_TEMPORAL`), each a reference's:
- "centred" (ours): clip k at (k + 0.5) / K of the range of valid starts (dense) or of each
  segment (segment); K = 1 gives the centre clip.
- "videomae" (VideoMAE kinetics.py / ssv2.py test mode, V-PETL Bench's copy): dense: the frames
  0, s, 2s, ... of the video (padded with the last to T), clip k starting at
  int(k (L - T) / (K - 1)) of those L frames, so the first clip starts at frame 0 and the last
  ends at the last sampled frame; segment: tick = N / T, clip k takes int(tick x + tick k / K)
  from segment x (offsets 0 and 1/2 for K = 2).
- "mmaction" (mmaction2 1.x SampleFrames / UniformSample, test_mode=True): dense: offsets
  round(k · max(N - span, 0) / (K - 1)) (K = 1: max_offset // 2), indices past the end wrap
  around (out_of_bound_opt "loop"); segment: int(round(seg · x)) + int(seg / (K + 1) · (k + 1))
  with seg = (N - 1) / T.

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


def videomae_dense_train_indices(num_frames: int, frames: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """VideoMAE's / V-PETL Bench's training clip (kinetics.py loadvideo_decord): an end drawn in
    [T·s, N), T frames linearly spaced over the T·s frames before it (truncated, so the step is
    T·s / (T - 1), not s); a video of at most T·s frames is spread over N // s frames, then its
    last frame repeats."""
    span = frames * stride
    if num_frames <= span:
        spread = np.linspace(0, num_frames, num=num_frames // stride)
        index = np.concatenate((spread, np.full(frames - num_frames // stride, float(num_frames))))
        return np.clip(index, 0, num_frames - 1).astype(np.int64)
    end = int(rng.integers(span, num_frames))
    return np.clip(np.linspace(end - span, end, num=frames), end - span, end - 1).astype(np.int64)


def videomae_segment_train_indices(num_frames: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """VideoMAE's SSv2 training frames (ssv2.py): one random frame in each of T segments of
    N // T frames; shorter videos take T sorted random frames, or frame 0 throughout."""
    segment = num_frames // frames
    if segment > 0:
        return np.arange(frames) * segment + rng.integers(segment, size=frames)
    if num_frames > frames:
        return np.sort(rng.integers(num_frames, size=frames))
    return np.zeros(frames, dtype=np.int64)


def videomae_dense_test_indices(num_frames: int, frames: int, stride: int, clips: int) -> np.ndarray:
    """(clips, frames): see "videomae" in the module docstring."""
    sampled = np.arange(0, num_frames, stride)
    sampled = np.concatenate((sampled, np.full(max(frames - len(sampled), 0), sampled[-1])))
    step = max((len(sampled) - frames) / (clips - 1), 0) if clips > 1 else 0.0
    starts = np.array([int(k * step) for k in range(clips)])
    return sampled[starts[:, None] + np.arange(frames)]


def videomae_segment_test_indices(num_frames: int, frames: int, clips: int) -> np.ndarray:
    """(clips, frames): see "videomae" in the module docstring."""
    tick = num_frames / float(frames)
    return np.array([[int(tick * k / clips + tick * x) for x in range(frames)] for k in range(clips)])


def mmaction_dense_test_indices(num_frames: int, frames: int, stride: int, clips: int) -> np.ndarray:
    """(clips, frames): see "mmaction" in the module docstring."""
    max_offset = max(num_frames - dense_span(frames, stride), 0)
    if clips > 1:
        offsets = np.round(np.arange(clips) * (max_offset / float(clips - 1)))
    else:
        offsets = np.array([max_offset // 2])
    return np.mod(offsets[:, None].astype(np.int64) + np.arange(frames) * stride, num_frames)


def mmaction_segment_test_indices(num_frames: int, frames: int, clips: int) -> np.ndarray:
    """(clips, frames): see "mmaction" in the module docstring."""
    segment = float(num_frames - 1) / frames
    duration = segment / (clips + 1)
    return np.array([[int(np.round(segment * x)) + int(duration * (k + 1)) for x in range(frames)]
                     for k in range(clips)])


# test.temporal -> (dense, segment) rules for K test clips
TEST_TEMPORAL = {
    "centred": (dense_test_indices, segment_test_indices),
    "videomae": (videomae_dense_test_indices, videomae_segment_test_indices),
    "mmaction": (mmaction_dense_test_indices, mmaction_segment_test_indices),
}
# data.train_temporal -> (dense, segment) random training clips
TRAIN_TEMPORAL = {
    "uniform": (random_dense_indices, random_segment_indices),
    "videomae": (videomae_dense_train_indices, videomae_segment_train_indices),
}
