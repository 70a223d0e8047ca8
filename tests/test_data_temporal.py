"""The three test-time temporal rules and the reference training loaders, each against the
reference code's formula written out here afresh, then through VideoDataset on encoded video."""
import numpy as np
import pytest
import torch
from conftest import counter_video_root

from vidpeft.data import DataConfig, VideoDataset, read_annotations
from vidpeft.data.pattern_video import frame_number
from vidpeft.data.sampling import TEST_TEMPORAL, TRAIN_TEMPORAL
from vidpeft.data.transforms import IMAGENET_MEAN, IMAGENET_STD

LENGTHS = [5, 17, 31, 32, 33, 64, 100, 301]


def videomae_dense(n, t, s, k):
    """VideoMAE kinetics.py, test mode: loadvideo_decord then the temporal_start slice."""
    all_index = [x for x in range(0, n, s)]
    while len(all_index) < t:
        all_index.append(all_index[-1])
    step = max(1.0 * (len(all_index) - t) / (k - 1), 0)
    return [all_index[int(c * step):int(c * step) + t] for c in range(k)]


def videomae_segment(n, t, k):
    """VideoMAE ssv2.py, test mode (2 temporal views): all_index sorted, then [chunk::2]."""
    tick = n / float(t)
    all_index = list(np.array([int(tick / 2.0 + tick * x) for x in range(t)] + [int(tick * x) for x in range(t)]))
    all_index = list(np.sort(np.array(all_index)))
    return [all_index[c::2] for c in range(k)]


def mmaction_dense(n, t, s, k):
    """mmaction2 1.x SampleFrames(test_mode=True), out_of_bound_opt='loop'."""
    ori = (t - 1) * s + 1
    max_offset = max(n - ori, 0)
    offsets = np.round(np.arange(k) * (max_offset / float(k - 1))) if k > 1 else np.array([max_offset // 2])
    inds = offsets[:, None] + np.arange(t)[None, :] * s
    return np.mod(inds, n).astype(int).tolist()


def mmaction_segment(n, t, k):
    """mmaction2 1.x UniformSample(test_mode=True)."""
    seg = float(n - 1) / t
    duration = seg / (k + 1)
    return [[int(np.round(seg * i)) + int(duration * (c + 1)) for i in range(t)] for c in range(k)]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("t, s, k", [(8, 4, 4), (16, 4, 5), (4, 2, 2), (8, 2, 1)])
def test_dense_test_rules_equal_the_references(n, t, s, k):
    if k > 1:
        assert TEST_TEMPORAL["videomae"][0](n, t, s, k).tolist() == videomae_dense(n, t, s, k)
    else:  # VideoMAE divides by K - 1; one clip starts at frame 0
        assert TEST_TEMPORAL["videomae"][0](n, t, s, k).tolist() == [list(range(0, n, s))[:t] + [
            list(range(0, n, s))[-1]] * max(0, t - len(range(0, n, s)))]
    assert TEST_TEMPORAL["mmaction"][0](n, t, s, k).tolist() == mmaction_dense(n, t, s, k)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("t", [4, 8, 16])
def test_segment_test_rules_equal_the_references(n, t):
    assert TEST_TEMPORAL["videomae"][1](n, t, 2).tolist() == videomae_segment(n, t, 2)
    for k in (1, 2, 3):
        assert TEST_TEMPORAL["mmaction"][1](n, t, k).tolist() == mmaction_segment(n, t, k)


def test_hand_picked_values():
    # 100 frames, 8 x stride 4: VideoMAE samples 0, 4, ..., 96 (25 frames), 4 clips start at
    # int(k * 17 / 3) = 0, 5, 11, 17 of them; mmaction: max offset 71, round(k * 71 / 3) = 0, 24, 47, 71;
    # ours: 72 starts, floor(72 (k + 0.5) / 4) = 9, 27, 45, 63.
    starts = {rule: TEST_TEMPORAL[rule][0](100, 8, 4, 4)[:, 0].tolist() for rule in TEST_TEMPORAL}
    assert starts == {"videomae": [0, 20, 44, 68], "mmaction": [0, 24, 47, 71], "centred": [9, 27, 45, 63]}
    # 20 frames (shorter than a clip): mmaction wraps around, VideoMAE repeats frame 16
    assert TEST_TEMPORAL["mmaction"][0](20, 8, 4, 1).tolist() == [[0, 4, 8, 12, 16, 0, 4, 8]]
    assert TEST_TEMPORAL["videomae"][0](20, 8, 4, 2).tolist() == [[0, 4, 8, 12, 16, 16, 16, 16]] * 2
    # SSv2 with 16 segments of a 48-frame video: offsets 0 and 1/2 of each 3-frame segment
    assert TEST_TEMPORAL["videomae"][1](48, 16, 2)[:, :3].tolist() == [[0, 3, 6], [1, 4, 7]]


@pytest.mark.parametrize("n", [10, 32, 33, 77, 300])
def test_videomae_training_clip_equals_the_reference_loader(n):
    """kinetics.py (VideoMAE and V-PETL Bench) loadvideo_decord, train mode, num_segment 1."""
    t, s = 8, 4
    for seed in range(30):
        ours = TRAIN_TEMPORAL["videomae"][0](n, t, s, np.random.default_rng(seed))
        draw = np.random.default_rng(seed)
        converted_len = int(t * s)
        if n <= converted_len:
            index = np.linspace(0, n, num=n // s)
            index = np.concatenate((index, np.ones(t - n // s) * n))
            index = np.clip(index, 0, n - 1).astype(np.int64)
        else:
            end_idx = draw.integers(converted_len, n)
            str_idx = end_idx - converted_len
            index = np.linspace(str_idx, end_idx, num=t)
            index = np.clip(index, str_idx, end_idx - 1).astype(np.int64)
        assert ours.tolist() == index.tolist()


def test_videomae_segment_training_frames():
    rng = np.random.default_rng(0)
    draws = np.stack([TRAIN_TEMPORAL["videomae"][1](43, 4, rng) for _ in range(400)])  # segments of 43 // 4 = 10
    for x in range(4):
        assert set(draws[:, x].tolist()) == set(range(10 * x, 10 * x + 10))
    assert TRAIN_TEMPORAL["videomae"][1](3, 4, rng).tolist() == [0, 0, 0, 0]


@pytest.fixture(scope="module")
def counter_root(tmp_path_factory):
    return counter_video_root(tmp_path_factory, 61, 32, 48, "v.mp4 0\n")


@pytest.mark.parametrize("rule", sorted(TEST_TEMPORAL))
@pytest.mark.parametrize("sampling", ["dense", "segment"])
def test_dataset_decodes_the_frames_each_rule_names(counter_root, rule, sampling):
    cfg = DataConfig(frames=4, stride=3, input_size=32, test_clips=3, test_crops=1, sampling=sampling,
                     test_temporal=rule, decoder="pyav")
    views, _, _ = VideoDataset(read_annotations(counter_root / "list.csv", counter_root), "test", cfg)[0]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    decoded = [[frame_number(f) for f in ((v * std + mean) * 255).permute(1, 2, 3, 0)] for v in views]
    dense, segment = TEST_TEMPORAL[rule]
    expected = dense(61, 4, 3, 3) if sampling == "dense" else segment(61, 4, 3)
    assert decoded == expected.tolist()
    assert cfg.views()["temporal"] == rule


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="test.temporal: 'middle'; must be one of centred, videomae, mmaction"):
        DataConfig(test_temporal="middle")
    with pytest.raises(ValueError, match="data.train_temporal: 'x'; must be one of"):
        DataConfig.from_recipe({"data": {"train_temporal": "x"}})
