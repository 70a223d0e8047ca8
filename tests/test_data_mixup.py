"""VideoMixup: CutMix cuts one H×W box through every frame, label weights are the pixel shares."""
import numpy as np
import pytest
import torch

from vidpeft.data import VideoMixup

B, T, H, W, CLASSES = 6, 4, 13, 17, 10  # odd sizes: boxes get clipped at the borders


def distinct_clips() -> torch.Tensor:
    """Clip b is filled with the value b + 1, so every pixel says which clip it came from."""
    return (torch.arange(B, dtype=torch.float32) + 1).view(B, 1, 1, 1, 1).expand(B, 3, T, H, W).contiguous()


def test_cutmix_label_weight_is_the_exchanged_pixel_share_on_every_frame():
    mix = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=CLASSES)
    labels = torch.arange(B)  # distinct labels: the weight of a clip's own label is its own share
    g = torch.Generator().manual_seed(0)
    exchanged_any = 0
    for _ in range(200):
        clips = distinct_clips()
        mixed, targets = mix(clips, labels, generator=g)
        assert torch.equal(clips, distinct_clips())  # the input is not modified
        for b in range(B):
            own = mixed[b] == b + 1
            partner = mixed[b] == B - b  # flip(0) pairs clip b with clip B-1-b
            assert torch.all(own | partner)
            frame_masks = partner[0]  # (T, H, W) of the first channel
            assert all(torch.equal(frame_masks[t], frame_masks[0]) for t in range(T))  # same cut on every frame
            share = frame_masks[0].float().mean().item()
            assert targets[b, b].item() == pytest.approx(1 - share, abs=1e-6)
            assert targets[b, B - 1 - b].item() == pytest.approx(share, abs=1e-6)
            assert targets[b].sum().item() == pytest.approx(1.0, abs=1e-6)
        exchanged_any += bool((mixed != clips).any())
    assert exchanged_any > 150  # Beta(1, 1) areas: nearly every batch exchanges pixels


def test_cutmix_box_follows_timm_rand_bbox():
    """The box is timm's rand_bbox formula, computed here from the same draws."""
    mix = VideoMixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=CLASSES)
    for seed in range(20):
        lam, box = mix.draw(H, W, torch.Generator().manual_seed(seed))
        rng = np.random.default_rng(int(torch.randint(2**62, (), generator=torch.Generator().manual_seed(seed))))
        lam0 = rng.beta(1.0, 1.0)
        rng.random()  # prob draw
        cut_h, cut_w = int(H * np.sqrt(1 - lam0)), int(W * np.sqrt(1 - lam0))
        cy, cx = rng.integers(0, H), rng.integers(0, W)
        expected = (max(cy - cut_h // 2, 0), min(cy + cut_h // 2, H), max(cx - cut_w // 2, 0), min(cx + cut_w // 2, W))
        assert box == tuple(int(v) for v in expected)
        assert lam == pytest.approx(1 - (expected[1] - expected[0]) * (expected[3] - expected[2]) / (H * W))


def test_mixup_blends_whole_clips_and_smooths_labels_as_timm():
    mix = VideoMixup(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=CLASSES)
    clips, labels = distinct_clips(), torch.arange(B)
    mixed, targets = mix(clips, labels, generator=torch.Generator().manual_seed(3))
    lam = (B - mixed[0, 0, 0, 0, 0].item()) / (B - 1)  # clip 0 (value 1) mixed with clip B-1 (value B)
    assert torch.allclose(mixed, clips * lam + clips.flip(0) * (1 - lam), atol=1e-5)
    off, on = 0.1 / CLASSES, 1 - 0.1 + 0.1 / CLASSES  # timm's mixup_target
    assert targets[0, 0].item() == pytest.approx(on * lam + off * (1 - lam), abs=1e-5)
    assert targets[0, B - 1].item() == pytest.approx(off * lam + on * (1 - lam), abs=1e-5)
    assert targets[0, 2].item() == pytest.approx(off, abs=1e-6)


def test_same_generator_state_same_mix_and_prob_zero_leaves_clips():
    mix = VideoMixup(0.8, 1.0, num_classes=CLASSES)
    a = mix(distinct_clips(), torch.arange(B), generator=torch.Generator().manual_seed(7))
    b = mix(distinct_clips(), torch.arange(B), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    off = VideoMixup(0.8, 1.0, prob=0.0, num_classes=CLASSES)
    mixed, targets = off(distinct_clips(), torch.arange(B), generator=torch.Generator().manual_seed(7))
    assert torch.equal(mixed, distinct_clips()) and torch.equal(targets, torch.eye(CLASSES)[:B])
    with pytest.raises(ValueError, match="mixup_alpha"):
        VideoMixup(0.0, 0.0)
