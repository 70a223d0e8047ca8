"""Clip transforms on uint8 frame tensors (T, H, W, 3) -> normalised float (3, T, S, S).

Every random choice is drawn once per clip and applied to all its frames (torchvision v2 on
a `Video` tensor), so a clip stays one coherent video. Training order: crop + resize to
S×S -> optional flip -> RandAugment (uint8) -> normalise -> random erasing (one box through
all frames, filled with normal noise). Testing: resize the short side to S, then the C crops
of `sampling.spatial_crops`.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from vidpeft.backbones import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported)
from vidpeft.data.sampling import resized_size, spatial_crops
from vidpeft.errors import UserError

if TYPE_CHECKING:
    from vidpeft.data.config import DataConfig

_RANDAUGMENT = re.compile(r"^rand(?P<options>(-[a-z]+[0-9.]+)*)$")
_MAX_MAGNITUDE = 10  # timm's magnitude scale: m10 = the strongest setting of every op


def parse_randaugment(spec: str) -> tuple[float, int, float]:
    """timm-style 'rand-m7-n4-mstd0.5-inc1' -> (magnitude, num_ops, magnitude_std)."""
    match = _RANDAUGMENT.match(spec)
    options = dict(re.findall(r"-([a-z]+)([0-9.]+)", match["options"])) if match else None
    if options is None or set(options) - {"m", "n", "mstd", "inc"}:
        raise UserError(f"randaugment {spec!r} is not of the form 'rand-m7-n4-mstd0.5-inc1' (keys m, n, mstd, inc)")
    if options.get("inc", "1") != "1":
        raise UserError(f"randaugment {spec!r}: only the increasing-severity op set (inc1) is available")
    return float(options.get("m", 9)), int(options.get("n", 2)), float(options.get("mstd", 0))


class VideoRandAugment(nn.Module):
    """torchvision's RandAugment op set driven by a timm config string: `num_ops` ops per clip,
    each with a magnitude drawn from N(m, mstd) clipped to [0, 10] (timm's scale)."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        self.magnitude, self.num_ops, self.magnitude_std = parse_randaugment(spec)
        self.bins_per_unit = 10  # magnitude resolution 0.1 on timm's 0..10 scale
        self.op = v2.RandAugment(
            num_ops=1, num_magnitude_bins=_MAX_MAGNITUDE * self.bins_per_unit + 1,
            interpolation=InterpolationMode.BILINEAR,
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_ops):
            magnitude = self.magnitude
            if self.magnitude_std > 0:
                magnitude = float(torch.normal(magnitude, self.magnitude_std, ()))
            self.op.magnitude = round(min(max(magnitude, 0.0), _MAX_MAGNITUDE) * self.bins_per_unit)
            video = self.op(video)
        return video


class MultiScaleCrop(nn.Module):
    """mmaction2's MultiScaleCrop (random_crop=False, max_wh_scale_gap=1), then resize to
    size×size: crop width and height are scales of the short side at most one scale step
    apart, placed at one of 5 fixed positions (4 corners, centre)."""

    def __init__(self, size: int, scales: Sequence[float]) -> None:
        super().__init__()
        self.size = size
        self.scales = tuple(scales)

    def sample_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, crop height, crop width) for a frame of this size."""
        # Sizes within 3 px of the output size snap to it, as in mmaction2.
        sizes = [int(min(height, width) * s) for s in self.scales]
        sizes = [self.size if abs(s - self.size) < 3 else s for s in sizes]
        pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= 1]
        crop_h, crop_w = pairs[int(torch.randint(len(pairs), ()))]
        h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
        offsets = [(0, 0), (0, 4 * w_step), (4 * h_step, 0), (4 * h_step, 4 * w_step), (2 * h_step, 2 * w_step)]
        top, left = offsets[int(torch.randint(len(offsets), ()))]
        return top, left, crop_h, crop_w

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        box = self.sample_box(*video.shape[-2:])
        return F.resized_crop(video, *box, [self.size, self.size], antialias=True)


def normalize(video: torch.Tensor, mean: Sequence[float], std: Sequence[float], channel_dim: int = -3) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> contiguous float32 (..., 3, H, W) with (x / 255 - mean) / std;
    `channel_dim` says where the channels are (e.g. 0 for (3, T, H, W)). Converting a
    transposed view straight into a contiguous tensor costs one copy: far cheaper than
    normalising and then making the transpose contiguous."""
    shape = [1] * (video.ndim - channel_dim % video.ndim)
    shape[0] = 3
    mean_t = torch.tensor(mean, dtype=torch.float32).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32).view(shape)
    return video.to(torch.float32, memory_format=torch.contiguous_format).div_(255).sub_(mean_t).div_(std_t)


def _as_video(frames: torch.Tensor) -> tv_tensors.Video:
    """(T, H, W, 3) uint8 -> Video (T, 3, H, W)."""
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


class TrainTransform:
    def __init__(self, cfg: DataConfig) -> None:
        if cfg.train_crop == "multiscale":
            crop = MultiScaleCrop(cfg.input_size, cfg.scales)
        else:
            crop = v2.RandomResizedCrop(
                cfg.input_size, scale=cfg.rrc_scale, ratio=cfg.rrc_ratio, antialias=True
            )
        steps: list[nn.Module] = [crop]
        if cfg.flip:
            steps.append(v2.RandomHorizontalFlip())
        if cfg.randaugment:
            steps.append(VideoRandAugment(cfg.randaugment))
        self.augment = v2.Compose(steps)
        self.erase = v2.RandomErasing(p=cfg.random_erasing, value="random") if cfg.random_erasing > 0 else None
        self.mean, self.std = cfg.mean, cfg.std

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (3, T, S, S) float32."""
        video = self.augment(_as_video(frames)).as_subclass(torch.Tensor)
        if self.erase is None:
            return normalize(video.transpose(0, 1), self.mean, self.std, channel_dim=0)
        video = self.erase(tv_tensors.Video(normalize(video, self.mean, self.std))).as_subclass(torch.Tensor)
        return video.transpose(0, 1).contiguous()


class MultiViewTransform:
    """K clips of T frames -> (K·C, 3, T, S, S) views, clip-major: view k·C + c is clip k
    (in time order) seen through crop c (left→right or top→bottom)."""

    def __init__(self, cfg: DataConfig) -> None:
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
