"""Sampling indices and test crop boxes against values computed by hand."""
import numpy as np
import pytest

from vidpeft.data.sampling import (
    dense_indices,
    dense_test_indices,
    random_dense_indices,
    random_segment_indices,
    resized_size,
    segment_indices,
    segment_test_indices,
    spatial_crops,
)


@pytest.mark.parametrize(
    "num_frames, frames, stride, start, expected",
    [
        (20, 4, 3, 5, [5, 8, 11, 14]),
        (10, 4, 4, 0, [0, 4, 8, 9]),  # runs past the end: the last frame repeats
        (3, 8, 4, 0, [0, 2, 2, 2, 2, 2, 2, 2]),  # a video shorter than the clip
    ],
)
def test_dense_indices(num_frames, frames, stride, start, expected):
    assert dense_indices(num_frames, frames, stride, start).tolist() == expected


def test_test_dense_clips_are_evenly_spaced():
    # 100 frames, 8 x stride 4 covers 29 frames: 72 valid starts; clip k starts at
    # floor(72 (k + 0.5) / 4) = 9, 27, 45, 63.
    assert dense_test_indices(100, 8, 4, 4).tolist() == [
        [9, 13, 17, 21, 25, 29, 33, 37],
        [27, 31, 35, 39, 43, 47, 51, 55],
        [45, 49, 53, 57, 61, 65, 69, 73],
        [63, 67, 71, 75, 79, 83, 87, 91],
    ]
    assert dense_test_indices(100, 8, 4, 1).tolist() == [[36, 40, 44, 48, 52, 56, 60, 64]]
    # Too short for one clip: every clip starts at 0 and repeats the last frame.
    assert dense_test_indices(20, 8, 4, 2).tolist() == [[0, 4, 8, 12, 16, 19, 19, 19]] * 2


def test_segment_indices():
    assert segment_indices(20, 4).tolist() == [2, 7, 12, 17]  # centres of 5-frame segments
    assert segment_indices(20, 4, np.array([0.0, 0.2, 0.99, 0.5])).tolist() == [0, 6, 14, 17]
    assert segment_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]  # 3 frames, 8 segments
    assert segment_test_indices(40, 4, 2).tolist() == [[2, 12, 22, 32], [7, 17, 27, 37]]
    assert segment_test_indices(40, 4, 1).tolist() == [[5, 15, 25, 35]]


def test_random_dense_start_covers_every_valid_start():
    rng = np.random.default_rng(0)
    clips = {tuple(random_dense_indices(31, 8, 4, rng)) for _ in range(200)}  # span 29: starts 0..2
    assert clips == {tuple(range(s, s + 29, 4)) for s in (0, 1, 2)}
    assert random_dense_indices(5, 4, 4, rng).tolist() == [0, 4, 4, 4]


def test_random_segment_takes_one_frame_inside_each_segment():
    rng = np.random.default_rng(0)
    draws = np.stack([random_segment_indices(40, 4, rng) for _ in range(500)])
    for segment in range(4):
        assert set(draws[:, segment].tolist()) == set(range(10 * segment, 10 * segment + 10))


@pytest.mark.parametrize(
    "height, width, crops, expected",
    [
        (240, 320, 3, [(0, 0), (0, 37), (0, 74)]),  # resized to 224 x 298
        (240, 427, 3, [(0, 0), (0, 87), (0, 174)]),  # SSv2-like: 224 x 398
        (240, 427, 1, [(0, 87)]),  # C = 1: the centre crop
        (320, 240, 3, [(0, 0), (37, 0), (74, 0)]),  # portrait: top / centre / bottom
        (256, 256, 3, [(0, 0), (0, 0), (0, 0)]),  # square: nothing to slide along
    ],
)
def test_spatial_crops(height, width, crops, expected):
    assert spatial_crops(height, width, 224, crops) == expected


def test_resized_size_truncates_the_long_side_like_torchvision():
    assert resized_size(240, 427, 224) == (224, 398)
    assert resized_size(427, 240, 224) == (398, 224)
