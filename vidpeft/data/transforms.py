"""Clip transforms on uint8 frame tensors (T, H, W, 3) -> normalised float (3, T, S, S), or for
training the uint8 crops that ClipNormalizer normalises on the device.

Every random choice is drawn once per clip and applied to all its frames, so a clip stays one
coherent video; draws come from torch's RNG, which the dataset seeds per item. Training order
(VideoMAE's kinetics.py `_aug_frame`): RandAugment on the decoded frames (uint8, timm's ops)
-> crop + resize to S×S -> optional flip -> normalise -> random erasing (one box through all
frames, per-pixel normal noise). Testing: resize the short side to S, then the C crops of
`sampling.spatial_crops`.
"""
from __future__ import annotations

import math
import random
import re
from contextlib import contextmanager
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from timm.data import auto_augment
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from vidpeft.backbones import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported)
from vidpeft.data.sampling import resized_size, spatial_crops
from vidpeft.data.stages import lap
from vidpeft.errors import UserError


_RANDAUGMENT = re.compile(r"^rand(?P<options>(-[a-z]+[0-9.]+)*)$")
_MAX_MAGNITUDE = 10.0  # timm's magnitude scale: m10 = the strongest setting of every op
_OP_PROB = 0.5  # timm's rand_augment_ops default: each drawn op is applied with probability 0.5
_FILL = (128, 128, 128)  # timm's default fill (VideoMAE passes no img_mean)
RAND_OPS = tuple(auto_augment._RAND_INCREASING_TRANSFORMS)  # the inc1 op set


def parse_randaugment(spec: str) -> tuple[float, int, float]:
    """timm-style 'rand-m7-n4-mstd0.5-inc1' -> (magnitude, num_ops, magnitude_std)."""
    match = _RANDAUGMENT.match(spec)
    options = dict(re.findall(r"-([a-z]+)([0-9.]+)", match["options"])) if match else None
    if options is None or set(options) - {"m", "n", "mstd", "inc"}:
        raise UserError(f"randaugment {spec!r} is not of the form 'rand-m7-n4-mstd0.5-inc1' (keys m, n, mstd, inc)")
    if options.get("inc", "1") != "1":
        raise UserError(f"randaugment {spec!r}: only the increasing-severity op set (inc1) is available")
    return float(options.get("m", 9)), int(options.get("n", 2)), float(options.get("mstd", 0))


class VideoRandAugment:
    """timm's RandAugment (`rand_augment_transform`, as VideoMAE's rand_augment.py applies it to a
    list of frames): `num_ops` ops drawn with replacement from timm's increasing-severity set,
    each applied with probability 0.5 at a magnitude drawn from N(m, mstd) clipped to [0, 10],
    mapped to its argument by timm's own level functions; every frame gets the same ops with
    the same arguments. PIL ops with bicubic resampling, fill (128, 128, 128) and
    translate_const = 0.45 × crop size, as VideoMAE's `create_random_augment`."""

    def __init__(self, spec: str, crop_size: int = 224) -> None:
        self.magnitude, self.num_ops, self.magnitude_std = parse_randaugment(spec)
        self.hparams = {"translate_const": int(crop_size * 0.45), "interpolation": Image.BICUBIC}

    def draw(self) -> list[tuple[str, tuple]]:
        """The ops to apply, with their arguments, for one clip."""
        ops = []
        for _ in range(self.num_ops):
            name = RAND_OPS[int(torch.randint(len(RAND_OPS), ()))]
            if float(torch.rand(())) > _OP_PROB:
                continue
            magnitude = self.magnitude
            if self.magnitude_std > 0:
                magnitude = float(torch.normal(magnitude, self.magnitude_std, ()))
            magnitude = max(0.0, min(magnitude, _MAX_MAGNITUDE))
            level = auto_augment.LEVEL_TO_ARG[name]
            with _python_random(int(torch.randint(2**62, ()))):  # timm negates signs with `random`
                ops.append((name, level(magnitude, self.hparams) if level is not None else ()))
        return ops

    def apply(self, frames: torch.Tensor, ops: list[tuple[str, tuple]]) -> torch.Tensor:
        """(T, H, W, 3) uint8 through `ops`, frame by frame."""
        if not ops:
            return frames
        images = [Image.fromarray(frame) for frame in frames.numpy()]
        for name, args in ops:
            images = [auto_augment.NAME_TO_OP[name](image, *args, fillcolor=_FILL, resample=Image.BICUBIC)
                      for image in images]
        return torch.from_numpy(np.stack([np.asarray(image) for image in images]))

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self.apply(frames, self.draw())


class VideoRandomErasing:
    """VideoMAE's random_erasing.py as its fine-tuning builds it (mode "pixel", one box, cube=True):
    with probability p, one box of area U(0.02, 1/3) of the frame and log-uniform aspect in
    (0.3, 1/0.3), up to 100 tries, at the same place on every frame, filled with fresh N(0, 1)
    noise per pixel and frame."""

    def __init__(self, probability: float, min_area: float = 0.02, max_area: float = 1 / 3,
                 min_aspect: float = 0.3, attempts: int = 100) -> None:
        self.probability, self.min_area, self.max_area = probability, min_area, max_area
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
        self.attempts = attempts

    def box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(top, left, h, w) of the erased box, or None."""
        if float(torch.rand(())) > self.probability:
            return None
        for _ in range(self.attempts):
            area = _uniform(self.min_area, self.max_area) * height * width
            aspect = math.exp(_uniform(*self.log_aspect))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                return int(torch.randint(height - h + 1, ())), int(torch.randint(width - w + 1, ())), h, w
        return None

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised (T, C, H, W), erased in place."""
        box = self.box(*video.shape[-2:])
        if box is not None:
            top, left, h, w = box
            video[..., top:top + h, left:left + w] = torch.randn(*video.shape[:-2], h, w)
        return video


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), dtype=torch.float64))


@contextmanager
def _python_random(seed: int):
    """Python's `random` seeded for a block, then restored (the caller's stream is not disturbed)."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class MultiScaleCrop(nn.Module):
    """TSN's GroupMultiScaleCrop (max_distort 1, fix_crop), as mmaction2's MultiScaleCrop
    (random_crop=False, max_wh_scale_gap=1) and V-PETL Bench's videomae_transforms.py, then
    resize to size×size: crop width and height are scales of the short side at most one scale
    step apart, placed at one of `fixed_crops` positions on a 4×4 grid of steps: 5 = corners and
    centre, 13 = also the edge centres and the four quarter points (`more_fix_crop`)."""

    def __init__(self, size: int, scales: Sequence[float], fixed_crops: int = 5) -> None:
        super().__init__()
        if fixed_crops not in (5, 13):
            raise ValueError(f"fixed_crops must be 5 or 13, got {fixed_crops}")
        self.size = size
        self.scales = tuple(scales)
        self.fixed_crops = fixed_crops

    def sample_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, crop height, crop width) for a frame of this size."""
        # Sizes within 3 px of the output size snap to it, as in mmaction2.
        sizes = [int(min(height, width) * s) for s in self.scales]
        sizes = [self.size if abs(s - self.size) < 3 else s for s in sizes]
        pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= 1]
        crop_h, crop_w = pairs[int(torch.randint(len(pairs), ()))]
        h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
        offsets = [(top * h_step, left * w_step) for top, left in FIXED_CROPS[:self.fixed_crops]]
        top, left = offsets[int(torch.randint(len(offsets), ()))]
        return top, left, crop_h, crop_w

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        box = self.sample_box(*video.shape[-2:])
        return F.resized_crop(video, *box, [self.size, self.size], antialias=True)


# (top, left) in grid steps, in fill_fix_offset's order: 4 corners, centre, then (more_fix_crop)
# centre left/right, lower/upper centre, and the four quarter points
FIXED_CROPS = ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3))


def normalize(video: torch.Tensor, mean: Sequence[float], std: Sequence[float], channel_dim: int = -3) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> contiguous float32 (..., 3, H, W) with (x / 255 - mean) / std;
    `channel_dim` says where the channels are (e.g. 0 for (3, T, H, W)). Converting a
    transposed view straight into a contiguous tensor costs one copy: far cheaper than
    normalising and then making the transpose contiguous."""
    shape = [1] * (video.ndim - channel_dim % video.ndim)
    shape[0] = 3
    mean_t = torch.tensor(mean, dtype=torch.float32, device=video.device).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32, device=video.device).view(shape)
    return video.to(torch.float32, memory_format=torch.contiguous_format).div_(255).sub_(mean_t).div_(std_t)


def _as_video(frames: torch.Tensor) -> tv_tensors.Video:
    """(T, H, W, 3) uint8 -> Video (T, 3, H, W)."""
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


class ClipNormalizer:
    """What the model is fed: a uint8 batch (B, 3, T, S, S) of pixels is normalised where it is
    (on the training device, as mmaction2's data preprocessor does); a float batch is already
    normalised (random erasing works on normalised values) and passes unchanged."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        return normalize(clips, self.mean, self.std, channel_dim=1) if clips.dtype == torch.uint8 else clips


class TrainTransform:
    """(T, H, W, 3) uint8 -> (3, T, S, S): normalised float32, or with `pixels` the uint8 crop for
    ClipNormalizer to normalise later (a quarter of the bytes to collate and pass between
    processes). Random erasing needs normalised values, so with it the clip is always float."""

    def __init__(self, cfg: Any, pixels: bool = False) -> None:  # cfg: a DataConfig
        if cfg.train_crop == "multiscale":
            crop = MultiScaleCrop(cfg.input_size, cfg.scales, cfg.fixed_crops)
        else:
            crop = v2.RandomResizedCrop(
                cfg.input_size, scale=cfg.rrc_scale, ratio=cfg.rrc_ratio, antialias=True
            )
        steps: list[nn.Module] = [crop]
        if cfg.flip:
            steps.append(v2.RandomHorizontalFlip())
        self.randaugment = VideoRandAugment(cfg.randaugment, cfg.input_size) if cfg.randaugment else None
        self.augment = v2.Compose(steps)
        self.erase = VideoRandomErasing(cfg.random_erasing) if cfg.random_erasing > 0 else None
        self.mean, self.std = cfg.mean, cfg.std
        self.pixels = pixels
        self.size = cfg.input_size

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if self.randaugment is not None:
            frames = self.randaugment(frames)
            lap("RandAugment")
        video = self.augment(_as_video(frames)).as_subclass(torch.Tensor)
        lap("crop + resize (+ flip)")
        if self.erase is None and self.pixels:  # a view of the (T, S, S, 3) pixels: collate stacks them as they lie
            return video.transpose(0, 1)
        if self.erase is None:
            video = normalize(video.transpose(0, 1), self.mean, self.std, channel_dim=0)
            lap("normalise")
            return video
        video = normalize(video, self.mean, self.std)
        lap("normalise")
        video = self.erase(video).transpose(0, 1).contiguous()
        lap("random erasing")
        return video


class MultiViewTransform:
    """K clips of T frames -> (K·C, 3, T, S, S) views, clip-major: view k·C + c is clip k
    (in time order) seen through crop c (left→right or top→bottom)."""

    def __init__(self, cfg: Any) -> None:  # cfg: a DataConfig
        self.size, self.crops = cfg.short_side_resize, cfg.test_crops
        self.mean, self.std = cfg.mean, cfg.std

    def __call__(self, frames: torch.Tensor, clips: int) -> torch.Tensor:
        """frames: (K·T, H, W, 3) uint8, the K clips one after another."""
        height, width = frames.shape[1:3]
        video = F.resize(frames.permute(0, 3, 1, 2), list(resized_size(height, width, self.size)), antialias=True)
        views = torch.stack(
            [video[..., top:top + self.size, left:left + self.size] for top, left in spatial_crops(height, width, self.size, self.crops)]
        )  # (C, K·T, 3, S, S)
        views = views.unflatten(1, (clips, -1)).transpose(0, 1).transpose(-4, -3)  # (K, C, 3, T, S, S)
        return normalize(views, self.mean, self.std, channel_dim=-4).flatten(0, 1)
