"""Mixup / CutMix for video clips (B, C, T, H, W), with timm's batch-mode semantics.

timm's `Mixup` cuts `x[..., y0:y1, x0:x1]` of whatever it is given, which on a (B, C, T, H, W)
clip is the T and H axes. Here the CutMix box lies in H×W and is the same on every frame, and
the label weight is the exact share of pixels kept after the box is clipped to the frame.
Otherwise as timm (`timm/data/mixup.py`, mode "batch"): one λ for the batch, each clip mixed
with the clip at the mirrored batch position, mixup or cutmix chosen with `switch_prob` when
both are on, mixing applied with probability `prob`, label smoothing as `mixup_target`.
"""
from __future__ import annotations

import numpy as np
import torch


def smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    targets = torch.full((len(labels), num_classes), off, device=labels.device)
    return targets.scatter_(1, labels[:, None], 1.0 - smoothing + off)


class VideoMixup:
    def __init__(self, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.0, num_classes: int = 1000) -> None:
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("VideoMixup needs mixup_alpha > 0 or cutmix_alpha > 0")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)

    def draw(self, height: int, width: int, generator: torch.Generator | None = None
             ) -> tuple[float, tuple[int, int, int, int] | None]:
        """(λ, box) for one batch: box = (top, bottom, left, right) of the CutMix cut, or None
        for mixup; λ is the share of each clip that stays its own."""
        rng = np.random.default_rng(int(torch.randint(2**62, (), generator=generator)))
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if rng.random() >= self.prob:
            return 1.0, None
        if not use_cutmix:
            return lam, None
        # timm's rand_bbox: a box of (1-λ) of the area centred anywhere, clipped to the frame
        ratio = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        top, bottom = int(np.clip(cy - cut_h // 2, 0, height)), int(np.clip(cy + cut_h // 2, 0, height))
        left, right = int(np.clip(cx - cut_w // 2, 0, width)), int(np.clip(cx + cut_w // 2, 0, width))
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        return lam, (top, bottom, left, right)

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """clips (B, C, T, H, W), int labels (B,) -> mixed clips (a new tensor), soft targets (B, classes)."""
        if clips.ndim != 5:
            raise ValueError(f"VideoMixup expects clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
        lam, box = self.draw(clips.shape[-2], clips.shape[-1], generator)
        partner = clips.flip(0)
        if box is None:
            mixed = clips * lam + partner * (1.0 - lam) if lam < 1.0 else clips.clone()
        else:
            top, bottom, left, right = box
            mixed = clips.clone()
            mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
        own = smoothed_one_hot(labels, self.num_classes, self.label_smoothing)
        return mixed, own * lam + own.flip(0) * (1.0 - lam)
