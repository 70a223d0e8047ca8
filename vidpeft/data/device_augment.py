"""Training augmentation on the training device (`data.device_augment`, `--device-augment`).

A loader worker decodes the clip and draws every random choice of the training transform (the
same draws, in the same order and from the same per-item seed as `TrainTransform`: RandAugment's
ops and arguments, the crop box, the flip, the erasing box) into a `ClipPlan`; it hands over the
decoded uint8 frames and the plans. The Trainer applies them where the model runs
(`apply_plans`): RandAugment (timm's PIL ops written on tensors), crop + resize, flip,
normalisation and erasing. On a GPU that removes the CPU's largest cost per clip (RandAugment:
75-85 % of a `videomae` worker's CPU, README); on CPU it gives the same clips as the worker path
(crop, resize and flip exactly; RandAugment's ops to within interpolation; the erasing box exactly,
its noise drawn by the worker where the worker path draws it)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as F

from torchvision.transforms import RandomResizedCrop

from vidpeft.data.transforms import _FILL, MultiScaleCrop, TrainTransform, normalize

Box = tuple[int, int, int, int]  # top, left, height, width


@dataclass(frozen=True)
class ClipPlan:
    """Every random choice of one training clip's augmentation."""

    ops: tuple[tuple[str, tuple], ...]  # RandAugment: timm op name and its arguments, in order
    box: Box  # crop of the (augmented) frames, resized to size x size
    flip: bool
    erase: Box | None  # on the size x size clip, filled with `noise`
    noise: torch.Tensor | None  # (T, 3, h, w) N(0, 1), drawn where TrainTransform draws it


class PlannedClip(NamedTuple):
    """A worker's hand-over: the decoded frames (T, H, W, 3) uint8 and R plans (repeated augmentation)."""

    frames: torch.Tensor
    plans: tuple[ClipPlan, ...]


def planned_clip(frames: torch.Tensor, plans: tuple[ClipPlan, ...]) -> PlannedClip:
    """What a worker hands over: the decoded frames, or where no RandAugment op comes before the crop (an op
    can read the whole frame: autocontrast, equalize, a rotation) only the region the crop boxes cover, copied
    out, with the boxes moved into it (cropping is slicing, so the clips are the same): a 224-pixel
    multi-scale crop of a 568x320 frame is 28-75 % of it."""
    if any(plan.ops for plan in plans):
        return PlannedClip(frames, plans)
    top, left = min(plan.box[0] for plan in plans), min(plan.box[1] for plan in plans)
    bottom = max(plan.box[0] + plan.box[2] for plan in plans)
    right = max(plan.box[1] + plan.box[3] for plan in plans)
    moved = tuple(replace(plan, box=(plan.box[0] - top, plan.box[1] - left, *plan.box[2:])) for plan in plans)
    return PlannedClip(frames[:, top:bottom, left:right].contiguous(), moved)


def apply_plans(clips: Sequence[PlannedClip], size: int, mean: Sequence[float], std: Sequence[float],
                device: torch.device) -> torch.Tensor:
    """(sum of R, 3, T, size, size) float32 normalised clips on `device`, one per plan, in order."""
    out = []
    for clip in clips:
        frames = clip.frames.to(device, non_blocking=True).permute(0, 3, 1, 2)  # (T, 3, H, W)
        out += [apply_plan(frames, plan, size, mean, std) for plan in clip.plans]
    return torch.stack(out)


def apply_plan(frames: torch.Tensor, plan: ClipPlan, size: int, mean: Sequence[float],
               std: Sequence[float]) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (3, T, size, size) float32, as TrainTransform makes it."""
    video = frames
    for name, args in plan.ops:
        video = RAND_OPS[name](video, *args)
    video = F.resized_crop(video, *plan.box, [size, size], antialias=True)
    if plan.flip:
        video = video.flip(-1)
    video = normalize(video, mean, std)
    if plan.erase is not None:
        top, left, h, w = plan.erase
        video[..., top:top + h, left:left + w] = plan.noise.to(video.device, non_blocking=True)
    return video.transpose(0, 1)


def draw_plan(transform: TrainTransform, height: int, width: int, frames: int) -> ClipPlan:
    """The random choices `transform` (a TrainTransform) would make for a (frames, height, width) clip,
    drawn from the current torch RNG in its order: RandAugment, crop, flip, erasing box and noise."""
    ops = tuple(transform.randaugment.draw()) if transform.randaugment is not None else ()
    crop, *rest = transform.augment.transforms
    if isinstance(crop, MultiScaleCrop):
        box = crop.sample_box(height, width)
    else:  # v2.RandomResizedCrop draws as v1's get_params does
        box = tuple(RandomResizedCrop.get_params(torch.empty(1, height, width), crop.scale, crop.ratio))
    flip = bool(rest) and bool(torch.rand(1) < rest[0].p)
    size = transform.size
    erase = transform.erase.box(size, size) if transform.erase is not None else None
    noise = torch.randn(frames, 3, erase[2], erase[3]) if erase is not None else None
    return ClipPlan(ops, box, flip, erase, noise)


# ---------------------------------------------------------------- timm's RandAugment ops on tensors
# (T, 3, H, W) uint8 in and out; the arguments are those timm's level functions give its PIL ops.

def _affine(video: torch.Tensor, matrix: Sequence[float]) -> torch.Tensor:
    """PIL's Image.transform(AFFINE, (a, b, c, d, e, f)): output pixel (x, y) takes the input at
    (a x + b y + c, d x + e y + f), pixel centres at +0.5; outside the frame, timm's fill. Bilinear
    (PIL's is bicubic)."""
    a, b, c, d, e, f = matrix
    t, _, height, width = video.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=video.device, dtype=torch.float32) + 0.5,
                            torch.arange(width, device=video.device, dtype=torch.float32) + 0.5, indexing="ij")
    grid = torch.stack([(a * xs + b * ys + c) * 2 / width - 1, (d * xs + e * ys + f) * 2 / height - 1], -1)
    source = torch.cat([video.float(), torch.ones_like(video[:, :1], dtype=torch.float32)], 1)
    moved = nnf.grid_sample(source, grid.expand(t, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                            align_corners=False)
    fill = torch.tensor(_FILL, dtype=torch.float32, device=video.device).view(1, 3, 1, 1)
    inside = moved[:, 3:] > 0.5
    return torch.where(inside, moved[:, :3], fill).round_().clamp_(0, 255).to(torch.uint8)


def _rotate(video: torch.Tensor, degrees: float) -> torch.Tensor:
    """PIL's Image.rotate(degrees) about the frame centre (counter-clockwise), as an affine map."""
    height, width = video.shape[-2:]
    angle = -math.radians(degrees)
    a, b, d, e = math.cos(angle), math.sin(angle), -math.sin(angle), math.cos(angle)
    cx, cy = width / 2, height / 2
    return _affine(video, (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy))


def _solarize(video: torch.Tensor, threshold: int) -> torch.Tensor:
    return video if threshold > 255 else F.solarize(video, threshold)


def _solarize_add(video: torch.Tensor, add: int, threshold: int = 128) -> torch.Tensor:
    added = (video.to(torch.int16) + add).clamp_(max=255).to(torch.uint8)
    return torch.where(video < threshold, added, video)


def _posterize(video: torch.Tensor, bits: int) -> torch.Tensor:
    return video if bits >= 8 else F.posterize(video, bits)


def _autocontrast(video: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.autocontrast: per frame and channel, lowest -> 0, highest -> 255 (truncated)."""
    low = video.amin((-2, -1), keepdim=True).float()
    high = video.amax((-2, -1), keepdim=True).float()
    scale = torch.where(high > low, 255 / (high - low).clamp(min=1), torch.ones_like(high))
    offset = torch.where(high > low, -low * scale, torch.zeros_like(low))
    return (video.float() * scale + offset).clamp_(0, 255).floor_().to(torch.uint8)


RAND_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "AutoContrast": _autocontrast,
    "Equalize": F.equalize,
    "Invert": F.invert,
    "Rotate": _rotate,
    "PosterizeIncreasing": _posterize,
    "SolarizeIncreasing": _solarize,
    "SolarizeAdd": _solarize_add,
    "ColorIncreasing": F.adjust_saturation,
    "ContrastIncreasing": F.adjust_contrast,
    "BrightnessIncreasing": F.adjust_brightness,
    "SharpnessIncreasing": F.adjust_sharpness,
    "ShearX": lambda video, factor: _affine(video, (1, factor, 0, 0, 1, 0)),
    "ShearY": lambda video, factor: _affine(video, (1, 0, 0, factor, 1, 0)),
    "TranslateXRel": lambda video, pct: _affine(video, (1, 0, pct * video.shape[-1], 0, 1, 0)),
    "TranslateYRel": lambda video, pct: _affine(video, (1, 0, 0, 0, 1, pct * video.shape[-2])),
}
