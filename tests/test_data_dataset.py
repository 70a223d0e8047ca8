"""VideoDataset and its loader on real encoded videos listed in an annotation file."""
import logging

import pytest
import torch

from vidpeft.data import ClipNormalizer, DataConfig, VideoDataset, VideoReadError, build_loader, read_annotations
from vidpeft.data.decode import DecoderUnavailable, available_decoders
from vidpeft.data.pattern_video import counter_frames, frame_number, red_level, write_video
from vidpeft.data.transforms import IMAGENET_MEAN, IMAGENET_STD

SIZE = 48


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "my videos").mkdir()
    write_video(root / "my videos" / "a.mp4", counter_frames(48, 96, 128))
    (root / "my videos" / "broken.mp4").write_bytes(b"not a video at all" * 50)
    lines = ["my videos/a.mp4 0", "my videos/broken.mp4 1", "my videos/a.mp4 2", "my videos/a.mp4 3", "my videos/a.mp4 4"]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root


def config(**options) -> DataConfig:
    return DataConfig(frames=4, stride=2, input_size=SIZE, test_clips=2, test_crops=3, **options)


def as_frames(video: torch.Tensor) -> torch.Tensor:
    """(3, T, S, S) normalised -> (T, S, S, 3) in 0..255."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    return ((video * std + mean) * 255).permute(1, 2, 3, 0)


@pytest.mark.parametrize(
    "sampling, expected",
    [  # 48 frames, T = 4, K = 2 (hand-computed, see test_data_sampling for the rules)
        ("dense", [[10, 12, 14, 16], [31, 33, 35, 37]]),  # stride 2: 42 starts -> 10, 31
        ("segment", [[3, 15, 27, 39], [9, 21, 33, 45]]),  # 12-frame segments at 1/4 and 3/4
    ],
)
def test_views_follow_documented_order(data_root, sampling, expected):
    samples = read_annotations(data_root / "train.csv")
    views = {}
    for decoder in available_decoders():
        dataset = VideoDataset(samples, "test", config(sampling=sampling, decoder=decoder))
        views[decoder], label, index = dataset[2]
        assert (label, index) == (2, 2)
    for decoder in views:
        assert torch.equal(views[decoder], views["pyav"]), decoder
    assert views["pyav"].shape == (6, 3, 4, SIZE, SIZE) and views["pyav"].dtype == torch.float32
    for clip in range(2):
        frames = [as_frames(views["pyav"][clip * 3 + crop]) for crop in range(3)]  # view k*C + c
        for crop_frames in frames:
            assert [frame_number(f) for f in crop_frames] == expected[clip]
        left, centre, right = (red_level(f) for f in frames)
        assert left < centre < right


def test_train_items_and_unreadable_videos(data_root, caplog):
    samples = read_annotations(data_root / "train.csv")
    dataset = VideoDataset(samples, "train", config(train_crop="random_resized", randaugment="rand-m7-n4-mstd0.5-inc1", random_erasing=0.25))
    clip, label, index = dataset[0]
    assert clip.shape == (3, 4, SIZE, SIZE) and clip.dtype == torch.float32 and (label, index) == (0, 0)
    with caplog.at_level(logging.WARNING, logger="vidpeft.data"):
        assert dataset[1] == (None, 1, 1)
    assert "broken.mp4" in caplog.text
    assert VideoDataset(samples, "test", config())[1] == (None, 1, 1)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        VideoDataset(samples, "train", config(), strict=True)[1]


def epochs(loader, count: int) -> list[list]:
    """Per epoch, the batches as (inputs, labels, indices, unreadable)."""
    return [[(b.inputs, b.labels.tolist(), b.indices.tolist(), b.unreadable) for b in loader] for _ in range(count)]


def same(run_a, run_b) -> bool:
    def equal(x, y):  # inputs are None when no video of the batch was readable
        return (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))

    return all(
        len(a) == len(b) and all(equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b))
        for a, b in zip(run_a, run_b)
    )


def test_loader_is_reproducible_and_reports_unreadable(data_root):
    dataset = VideoDataset(read_annotations(data_root / "train.csv"), "train", config(), seed=1)
    reference = epochs(build_loader(dataset, batch_size=2, shuffle=True, seed=5), 2)
    batches = reference[0]
    assert sorted(i for b in batches for i in b[2]) == [0, 2, 3, 4]  # every readable video once
    assert [u for b in batches for u in b[3]] == [1]  # the broken one is reported, not replaced
    assert all(b[0].shape == (len(b[2]), 3, 4, SIZE, SIZE) for b in batches)
    assert [b[1] for b in batches] == [b[2] for b in batches]  # labels stay with their videos
    assert not same(reference[:1], reference[1:])  # a new epoch draws new clips

    # Same seeds: same clips, with or without workers; a loader set to epoch 1 (a resumed
    # run) gives what the uninterrupted run saw in its second epoch.
    assert same(epochs(build_loader(dataset, batch_size=2, shuffle=True, seed=5, num_workers=2), 2), reference)
    resumed = build_loader(dataset, batch_size=2, shuffle=True, seed=5)
    resumed.sampler.set_epoch(1)
    assert same(epochs(resumed, 1), reference[1:])
    other = VideoDataset(dataset.samples, "train", config(), seed=2)
    assert not same(epochs(build_loader(other, batch_size=2, shuffle=True, seed=5), 1), reference[:1])


@pytest.mark.parametrize("erasing", [0.0, 1.0])
def test_pixel_batches_normalised_on_the_device_are_the_normalised_batches(data_root, erasing):
    """vidpeft-train's loader (pixels=True, 2 workers) hands over uint8 crops and ClipNormalizer
    normalises them: exactly the float batches of the default dataset. With random erasing
    (which needs normalised values) the clips come normalised and pass unchanged."""
    samples = read_annotations(data_root / "train.csv")
    cfg = config(random_erasing=erasing)
    floats = epochs(build_loader(VideoDataset(samples, "train", cfg, seed=1), batch_size=2, shuffle=True), 1)[0]
    pixels = epochs(build_loader(VideoDataset(samples, "train", cfg, seed=1, pixels=True), batch_size=2,
                                 shuffle=True, num_workers=2), 1)[0]
    normalizer = ClipNormalizer(IMAGENET_MEAN, IMAGENET_STD)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    for (clips, *rest), (raw, *raw_rest) in zip(floats, pixels):
        if clips is None:  # the broken video alone in a batch
            assert raw is None and rest == raw_rest
            continue
        assert raw.dtype == (torch.uint8 if erasing == 0 else torch.float32) and rest == raw_rest
        assert torch.equal(normalizer(raw), clips)
        if erasing == 0:
            assert torch.equal(clips, (raw.float() / 255 - mean) / std)
            assert raw.permute(0, 2, 3, 4, 1).is_contiguous()  # stacked as the crops lie: (B, T, S, S, 3)


def test_a_missing_decoder_is_one_error_when_the_dataset_is_built(data_root, monkeypatch):
    import sys

    for name in ("torchcodec", "torchcodec.decoders", "torchcodec._core"):
        monkeypatch.setitem(sys.modules, name, None)  # as if torchcodec were not installed
    with pytest.raises(DecoderUnavailable, match="^decoder 'torchcodec' is not available: torchcodec is not installed"):
        VideoDataset(read_annotations(data_root / "train.csv"), "train", config(decoder="torchcodec"))
