"""The loader's stage clock (benchmarks/clip_cost.py's breakdown): inside timing() every stage of
a training item and its collation is charged, and the stages account for the item's CPU time."""
import time

import numpy as np

from vidpeft.data import DataConfig, Sample, VideoDataset, collate
from vidpeft.data.pattern_video import write_video
from vidpeft.data.stages import lap, timing


def test_stages_of_a_training_item_add_up_to_its_cpu_time(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (60, 64, 96, 3), dtype=np.uint8)
    path = write_video(tmp_path / "a.mp4", frames, options={"x264-params": "keyint=16"})
    cfg = DataConfig(frames=4, stride=4, input_size=32, randaugment="rand-m7-n2", random_erasing=1.0)
    dataset = VideoDataset([Sample(path, 0)] * 4, "train", cfg)
    with timing() as times:
        start = time.process_time()
        collate([dataset[(0, i)] for i in range(4)])
        spent = time.process_time() - start
        lap("after")
    stages = set(times.seconds)
    assert {"open + demux (index)", "seek", "decode: needed frames", "decode: colour conversion", "RandAugment",
            "crop + resize (+ flip)", "normalise", "random erasing", "collate"} <= stages
    assert "decode: frames before the first needed" in stages  # keyframes every 16 frames, clips start later
    accounted = sum(s for stage, s in times.seconds.items() if stage != "after")
    assert 0.9 * spent <= accounted <= spent + 0.01
    lap("outside")  # no clock running: nothing is recorded
    assert "outside" not in times.seconds
