"""Training augmentation equal to the reference code: timm's RandAugment as VideoMAE applies it,
VideoMAE's random erasing, V-PETL's 13 multi-scale crop positions, repeated augmentation."""
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import counter_video_root
from timm.data import auto_augment
from torchvision.transforms.v2 import functional as F

from vidpeft.data import DataConfig, VideoDataset, build_loader, open_video, read_annotations
from vidpeft.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiScaleCrop,
    TrainTransform,
    VideoRandAugment,
    VideoRandomErasing,
    normalize,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = "rand-m7-n4-mstd0.5-inc1"


def textured_clip(frames=3, height=40, width=56, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8))


def test_op_set_is_timms_inc1_set():
    reference = auto_augment.rand_augment_transform(SPEC, {"translate_const": 100})
    assert sorted(op.name for op in reference.ops) == sorted(set(auto_augment._RAND_INCREASING_TRANSFORMS))
    assert {op.prob for op in reference.ops} == {0.5} and reference.num_layers == 4


@pytest.mark.parametrize("name", auto_augment._RAND_INCREASING_TRANSFORMS)
def test_each_op_equals_timms_augment_op_on_every_frame(name):
    """One op at magnitude 7 on each frame = timm's AugmentOp (prob 1, VideoMAE's hparams) on that frame."""
    hparams = {"translate_const": 100, "interpolation": Image.BICUBIC}
    reference = auto_augment.AugmentOp(name, prob=1.0, magnitude=7, hparams=hparams)
    ours = VideoRandAugment(SPEC, crop_size=224)
    frames = textured_clip()
    for seed in range(3):
        random.seed(seed)
        expected = [np.asarray(reference(Image.fromarray(f))) for f in frames.numpy()[:1]]
        random.seed(seed)
        level = auto_augment.LEVEL_TO_ARG[name]
        args = level(7.0, ours.hparams) if level else ()
        out = ours.apply(frames, [(name, args)]).numpy()
        assert np.array_equal(out[0], expected[0])
        # the same op with the same arguments on every frame
        for t in range(1, len(frames)):
            single = auto_augment.NAME_TO_OP[name](Image.fromarray(frames.numpy()[t]), *args,
                                                   fillcolor=(128, 128, 128), resample=Image.BICUBIC)
            assert np.array_equal(out[t], np.asarray(single))


def test_draws_follow_timm_probabilities_and_magnitudes():
    ra = VideoRandAugment(SPEC, crop_size=224)
    torch.manual_seed(0)
    draws = [ra.draw() for _ in range(3000)]
    counts = [len(d) for d in draws]
    assert abs(np.mean(counts) - 4 * 0.5) < 0.06  # 4 ops, each kept with probability 0.5
    names = {name for d in draws for name, _ in d}
    assert names == set(auto_augment._RAND_INCREASING_TRANSFORMS)
    angles = [abs(args[0]) for d in draws for name, args in d if name == "Rotate"]
    assert abs(np.mean(angles) - 7 / 10 * 30) < 0.3  # |angle| = m / 10 * 30 with m ~ N(7, 0.5)
    signs = [args[0] > 0 for d in draws for name, args in d if name == "Rotate"]
    assert 0.4 < np.mean(signs) < 0.6  # timm negates with probability 1/2
    state = random.getstate()
    ra.draw()
    assert random.getstate() == state  # the caller's Python RNG is left alone


def test_randaugment_runs_before_the_crop_and_keeps_frames_alike():
    cfg = DataConfig(frames=4, input_size=32, train_crop="random_resized", randaugment=SPEC)
    transform = TrainTransform(cfg)
    still = textured_clip(frames=1).expand(4, -1, -1, -1)
    for seed in range(6):
        torch.manual_seed(seed)
        out = transform(still)
        assert all(torch.equal(out[:, 0], out[:, t]) for t in range(1, 4))


def test_random_erasing_formula_same_box_every_frame():
    """VideoMAE random_erasing.py, _erase_cube with mode pixel, written out with the same draws."""
    erase = VideoRandomErasing(1.0)
    T, C, H, W = 3, 3, 20, 30
    for seed in range(30):
        torch.manual_seed(seed)
        video = erase(torch.zeros(T, C, H, W))
        torch.manual_seed(seed)
        assert float(torch.rand(())) <= 1.0
        expected = None
        for _ in range(100):
            target = (0.02 + (1 / 3 - 0.02) * float(torch.rand((), dtype=torch.float64))) * H * W
            lo, hi = math.log(0.3), math.log(1 / 0.3)
            aspect = math.exp(lo + (hi - lo) * float(torch.rand((), dtype=torch.float64)))
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if w < W and h < H:
                expected = (int(torch.randint(H - h + 1, ())), int(torch.randint(W - w + 1, ())), h, w)
                break
        top, left, h, w = expected
        mask = torch.zeros(H, W, dtype=torch.bool)
        mask[top:top + h, left:left + w] = True
        for t in range(T):
            assert torch.equal(video[t].ne(0).any(0), mask)  # erased exactly the box, on every frame
        assert not torch.equal(video[0][:, mask], video[1][:, mask])  # fresh noise per frame
    hits = 0
    quarter = VideoRandomErasing(0.25)
    torch.manual_seed(0)
    for _ in range(2000):
        hits += bool(quarter(torch.zeros(1, 3, 20, 30)).ne(0).any())
    assert abs(hits / 2000 - 0.25) < 0.03


def reference_boxes(image_w, image_h, input_size, scales):
    """V-PETL videomae_transforms.py GroupMultiScaleCrop._sample_crop_size / fill_fix_offset
    (more_fix_crop=True), every (top, left, h, w) it can return."""
    base = min(image_w, image_h)
    sizes = [int(base * x) for x in scales]
    crop_h = [input_size if abs(x - input_size) < 3 else x for x in sizes]
    crop_w = [input_size if abs(x - input_size) < 3 else x for x in sizes]
    pairs = [(w, h) for i, h in enumerate(crop_h) for j, w in enumerate(crop_w) if abs(i - j) <= 1]
    boxes = set()
    for cw, ch in pairs:
        ws, hs = (image_w - cw) // 4, (image_h - ch) // 4
        offsets = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs), (0, 2 * hs),
                   (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0), (ws, hs), (3 * ws, hs), (ws, 3 * hs),
                   (3 * ws, 3 * hs)]
        boxes |= {(oh, ow, ch, cw) for ow, oh in offsets}
    return boxes


def test_thirteen_fixed_crop_positions():
    crop = MultiScaleCrop(224, (1, 0.875, 0.75, 0.66), fixed_crops=13)
    torch.manual_seed(0)
    drawn = {crop.sample_box(240, 427) for _ in range(6000)}
    assert drawn == reference_boxes(427, 240, 224, (1, 0.875, 0.75, 0.66))
    five = MultiScaleCrop(224, (1, 0.875, 0.75, 0.66))
    assert {five.sample_box(240, 427) for _ in range(3000)} < drawn


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    return counter_video_root(tmp_path_factory, 40, 48, 64, "v.mp4 3\nv.mp4 5\n")


def test_dataset_crop_is_one_of_the_thirteen(video_root):
    """A training item through VideoDataset is the resized crop of one of the reference boxes."""
    cfg = DataConfig(frames=2, stride=2, input_size=24, fixed_crops=13, decoder="pyav")
    dataset = VideoDataset(read_annotations(video_root / "list.csv", video_root), "train", cfg)
    reader = open_video(video_root / "v.mp4", "pyav")
    for epoch in range(3):
        clip, _, _ = dataset[(epoch, 0)]
        seed = int(np.random.SeedSequence([0, epoch, 0]).generate_state(1, np.uint64)[0])
        source = reader.read(dataset.train_indices(40, seed)).permute(0, 3, 1, 2)
        matches = [torch.equal(clip, normalize(F.resized_crop(source, top, left, h, w, [24, 24], antialias=True),
                                               IMAGENET_MEAN, IMAGENET_STD).transpose(0, 1))
                   for top, left, h, w in reference_boxes(64, 48, 24, cfg.scales)]
        assert sum(matches) >= 1


def test_repeated_augmentation_through_the_loader(video_root):
    cfg = DataConfig(frames=2, stride=2, input_size=24, repeated_aug=2, decoder="pyav", train_crop="random_resized")
    dataset = VideoDataset(read_annotations(video_root / "list.csv", video_root), "train", cfg)
    batch = next(iter(build_loader(dataset, batch_size=2)))
    assert batch.inputs.shape == (4, 3, 2, 24, 24)
    assert batch.labels.tolist() == [3, 3, 5, 5] and batch.indices.tolist() == [0, 0, 1, 1]
    assert not torch.equal(batch.inputs[0], batch.inputs[1])  # two augmentations of one decoded clip
