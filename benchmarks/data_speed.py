"""Training data-loading throughput: clips/s of VideoDataset + build_loader per decoder and
number of loader workers, on generated H.264 videos like the ones vidpeft-prep writes.

    python benchmarks/data_speed.py [--videos 6 --frames 16 --size 224 --recipe videomae]

Videos: `--videos` textured moving-object clips (vidpeft.synthetic.render), `--seconds` long
at `--fps`, `--video-size` WxH (default 568x320: a 16:9 video with the 320-px short side of
prepared Kinetics), encoded with libx264 crf 23 veryfast as vidpeft-prep does. The training
pipeline is the recipe's (`videomae`: random resized crop + RandAugment + random erasing;
`vpetl`: multi-scale crop). One warm-up batch, then `--batches` batches are timed.

Next to them it prints the training step rate of `--backbone` with `--method` (forward,
backward and AdamW step on random clips of the same shape, bf16 autocast as vidpeft-train
uses on CPU; `--backbone none` skips it), and each loader rate as a multiple of it: above 1,
the loader keeps up with the model.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidpeft.data import DataConfig, Sample, VideoDataset, build_loader, load_recipe
from vidpeft.data.pattern_video import write_video
from vidpeft.synthetic import MOTIONS, render

PREP_X264 = {"crf": "23", "preset": "veryfast"}  # vidpeft-prep's defaults


def make_videos(folder: Path, count: int, size: tuple[int, int], seconds: float, fps: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        frames = render(MOTIONS[i % len(MOTIONS)], rng, size, int(seconds * fps))
        samples.append(Sample(write_video(folder / f"{i}.mp4", frames, fps, options=PREP_X264), i % len(MOTIONS)))
    return samples


def measure_loader(dataset: VideoDataset, workers: int, batches: int, batch_size: int = 8) -> float:
    """Clips per second delivered by build_loader(dataset, ...) over `batches` batches, after
    one warm-up batch (worker start-up); epochs repeat as needed."""
    loader = build_loader(dataset, batch_size, shuffle=True, num_workers=workers, seed=0)
    stream = itertools.chain.from_iterable(loader for _ in itertools.count())
    next(stream)
    start, clips = time.perf_counter(), 0
    for batch in itertools.islice(stream, batches):
        clips += len(batch.indices)
    elapsed = time.perf_counter() - start
    del stream, loader  # stops the persistent workers
    gc.collect()
    return clips / elapsed


def run(args: argparse.Namespace, model_rate: Callable[[DataConfig, int], float] | None = None) -> None:
    width, height = (int(v) for v in args.video_size.split("x"))
    base = DataConfig.from_recipe(load_recipe(args.recipe, "k400"), frames=args.frames, input_size=args.size)
    with tempfile.TemporaryDirectory(prefix="data_speed_") as tmp:
        start = time.perf_counter()
        samples = make_videos(Path(tmp), args.videos, (width, height), args.seconds, args.fps)
        print(f"{args.videos} videos {width}x{height}, {args.seconds:g} s at {args.fps} fps, H.264 "
              f"(made in {time.perf_counter() - start:.0f} s); recipe {args.recipe}: {base.frames} frames, "
              f"{base.sampling} stride {base.stride}, {base.train_crop} crop to {base.input_size}, "
              f"randaugment {base.randaugment}, erasing {base.random_erasing}; batch {args.batch_size}, "
              f"{args.batches} timed batches")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
              f"main-process torch threads {torch.get_num_threads()}")
        model = model_rate(base, args.batch_size) if model_rate else None
        if model is not None:
            print(f"model training step: {model:.2f} clips/s")
        print(f"{'decoder':8} {'workers':>7} {'clips/s':>8}" + ("  loader/model" if model else ""))
        for decoder in args.decoders.split(","):
            dataset = VideoDataset(samples, "train", base.override(decoder=decoder))
            for workers in (int(w) for w in args.workers.split(",")):
                rate = measure_loader(dataset, workers, args.batches, args.batch_size)
                print(f"{decoder:8} {workers:7d} {rate:8.2f}" + (f"  {rate / model:12.2f}" if model else ""), flush=True)


def training_rate(backbone: str, method: str, steps: int, batch: int) -> Callable[[DataConfig, int], float]:
    """clips/s of full training steps of `backbone` + `method` at the data config's clip shape."""

    def rate(cfg: DataConfig, _: int) -> float:
        import torch.nn.functional as F

        from vidpeft import build_model

        model = build_model(backbone, method, num_classes=400).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        clips = torch.randn(batch, 3, cfg.frames, cfg.input_size, cfg.input_size)
        labels = torch.zeros(batch, dtype=torch.long)
        timings = []
        for _ in range(steps + 1):  # the first step warms up
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(clips), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timings.append(time.perf_counter() - start)
        print(f"model: {backbone} + {method}, batch {batch}, median of {steps} steps "
              f"{float(np.median(timings[1:])):.2f} s/step")
        return batch / float(np.median(timings[1:]))

    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--size", type=int, default=224, help="crop size (input_size)")
    parser.add_argument("--recipe", default="videomae", help="training pipeline: videomae or vpetl")
    parser.add_argument("--video-size", default="568x320", help="WxH of the generated videos")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per setting")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated loader worker counts")
    parser.add_argument("--decoders", default="decord,pyav")
    parser.add_argument("--backbone", default="videomae-b", help="model whose step rate is shown ('none': skip)")
    parser.add_argument("--method", default="adaptformer", help="PEFT method of that model")
    parser.add_argument("--model-batch", type=int, default=1, help="clips per timed model step")
    parser.add_argument("--model-steps", type=int, default=2, help="timed model steps (after one warm-up)")
    args = parser.parse_args(argv)
    model = None if args.backbone == "none" else training_rate(args.backbone, args.method, args.model_steps,
                                                               args.model_batch)
    run(args, model_rate=model)


if __name__ == "__main__":
    main()
