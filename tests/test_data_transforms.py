"""Training and multi-view transforms on uint8 clips."""
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from vidpeft.data import DataConfig
from vidpeft.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiScaleCrop,
    MultiViewTransform,
    TrainTransform,
    normalize,
    parse_randaugment,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def ramp_clip(frames: int = 4, height: int = 96, width: int = 128) -> torch.Tensor:
    """(T, H, W, 3) uint8: red grows left to right, green with the frame number, blue with the row."""
    clip = torch.zeros(frames, height, width, 3, dtype=torch.uint8)
    clip[..., 0] = torch.linspace(0, 255, width).to(torch.uint8)
    clip[..., 1] = (torch.arange(frames) * 40).to(torch.uint8)[:, None, None]
    clip[..., 2] = torch.linspace(0, 255, height).to(torch.uint8)[:, None]
    return clip


def unnormalize_red(video: torch.Tensor) -> torch.Tensor:
    """Red channel of a (3, T, H, W) normalised clip back in 0..255."""
    return (video[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255


def test_normalize_is_imagenet_mean_std():
    video = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    out = normalize(video, IMAGENET_MEAN, IMAGENET_STD)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD))
    assert torch.allclose(out[1, :, 0, 0], (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))


def test_parse_randaugment():
    assert parse_randaugment("rand-m7-n4-mstd0.5-inc1") == (7.0, 4, 0.5)
    assert parse_randaugment("rand-m9") == (9.0, 2, 0.0)
    for bad in ("rand-m7-x2", "augmix-m5", "rand-m7-inc0"):
        with pytest.raises(ValueError, match="rand-m7|inc1"):
            parse_randaugment(bad)


@pytest.mark.parametrize("train_crop", ["multiscale", "random_resized"])
def test_train_transform_treats_all_frames_alike(train_crop):
    cfg = DataConfig(frames=4, input_size=64, train_crop=train_crop, flip=True, dataset="k400",
                     randaugment="rand-m7-n4-mstd0.5-inc1", random_erasing=1.0)
    transform = TrainTransform(cfg)
    still = ramp_clip()[:1].expand(4, -1, -1, -1)  # four identical frames
    for seed in range(5):
        torch.manual_seed(seed)
        out = transform(still)
        assert out.shape == (3, 4, 64, 64) and out.dtype == torch.float32
        # identical frames in -> identical frames out, but for the erased box: every random choice
        # is per clip; the box is the same on every frame, its noise fresh per frame (VideoMAE's)
        masks = [(out[:, 0] != out[:, t]).any(0) for t in range(1, 4)]
        assert all(torch.equal(m, masks[0]) for m in masks)
        rows, cols = masks[0].any(1).nonzero(), masks[0].any(0).nonzero()
        if len(rows):
            assert masks[0][rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle


def test_multiscale_crop_boxes():
    crop = MultiScaleCrop(224, (1, 0.875, 0.75, 0.66))
    torch.manual_seed(0)
    boxes = {crop.sample_box(240, 320) for _ in range(1500)}
    # short side 240 -> sizes 240, 210, 180, 158; height and width at most one step apart
    assert {(h, w) for _, _, h, w in boxes} == {
        (240, 240), (240, 210), (210, 240), (210, 210), (210, 180),
        (180, 210), (180, 180), (180, 158), (158, 180), (158, 158),
    }
    # a 240 x 240 crop of a 240 x 320 frame: steps 0 and 20 -> left 0, 80 (corners), 40 (centre)
    assert {(top, left) for top, left, h, w in boxes if (h, w) == (240, 240)} == {(0, 0), (0, 80), (0, 40)}
    # 158 x 180: steps (240-158)//4 = 20 and (320-180)//4 = 35
    assert {(top, left) for top, left, h, w in boxes if (h, w) == (158, 180)} == {
        (0, 0), (0, 140), (80, 0), (80, 140), (40, 70)
    }


@pytest.mark.parametrize("flip", [False, True])
def test_flip_only_when_asked(flip):
    transform = TrainTransform(DataConfig(input_size=64, flip=flip, dataset="k400"))
    mirrored = []
    for seed in range(16):
        torch.manual_seed(seed)
        red = unnormalize_red(transform(ramp_clip()))[0].mean(dim=0)  # mean over rows
        mirrored.append(bool(red[0] > red[-1]))
    assert any(mirrored) == flip and all(mirrored) is False


def test_multi_view_crops_in_documented_order():
    cfg = DataConfig(input_size=64, test_crops=3)
    frames = ramp_clip(frames=6)  # 2 clips of 3 frames, 96 x 128
    views = MultiViewTransform(cfg)(frames, clips=2)
    assert views.shape == (6, 3, 3, 64, 64)
    resized = F.resize(frames.permute(0, 3, 1, 2), [64, 85], antialias=True)  # (T, 3, H, W)
    for k in range(2):
        for c, left in enumerate([0, 10, 21]):  # hand-computed: 85 - 64 = 21
            expected = normalize(resized[3 * k:3 * k + 3, :, :, left:left + 64], IMAGENET_MEAN, IMAGENET_STD)
            assert torch.equal(views[3 * k + c], expected.transpose(0, 1))
