"""Training data-loading throughput: clips/s of VideoDataset + build_loader per decoder and
number of loader workers, on generated H.264 videos like the ones vidpeft-prep writes, next to
the model's training step rate and against mmaction2 1.2's own loader.

    python benchmarks/data_speed.py [--recipe vpetl,videomae --frames 8 --videos 24 --workers 0,1,2,all]

Videos: `--videos` textured moving-object clips (vidpeft.synthetic.render), `--seconds` long at
`--fps`, in two sizes: K400-like 568x320 (16:9 with the 320-px short side of prepared
Kinetics) and SSv2-like 426x240 (SSv2's own size), encoded with libx264 as vidpeft-prep does by
default (`--encoding fastseek`). The training pipeline is the recipe's (`vpetl`: multi-scale crop;
`videomae`: random resized crop + RandAugment + random erasing, 2 repeated clips per decode, every
clip counted); `--recipe` takes several, measured one after the other.

Per recipe and kind: clips/s of each decoder and of `DEFAULT+device` (the default decoder with
`--device-augment`: the workers decode and draw, and hand over frames and plans) at each worker
count; the scaling efficiency at each count above 1 (N workers' rate / N x one worker's); one
worker's clips per CPU-second (benchmarks/clip_cost.py's measure: the worker's work in this process
on one thread), with and without --device-augment; and the device side of --device-augment
(`vidpeft.data.device_augment.apply_plans` on the model's device, CUDA synchronised) in ms per clip.
A GPU decoder (`nvdec`, where it is available) decodes in the training process, so it is not in
the worker table: its own line gives its clips/s with 0 workers, with the CPU transforms and with
--device-augment (frames and augmentation stay on the GPU), against `DEFAULT+device` at the most
workers, alternating; in training its decoding adds to each step (nothing overlaps it).

Every rate is a median over `--rounds` rounds, and the settings compared with each other
(decoders; vidpeft and mmaction2) alternate within each round, in reversed order every other
round, so they see the same load; a ratio is the median of the ratios within each round. Each measurement builds
a fresh loader, draws one warm-up batch (worker start-up), then times `--batches` batches per worker.

mmaction2 (`--mmaction`, on by default when it is installed): the train_pipeline of
configs/mmaction/_base_/ssv2_vpetl.py (DecordInit, SampleFrames 8x4, DecordDecode, Resize to
short side 256, MultiScaleCrop, Resize 224x224, FormatShape, PackActionInputs) on the same
videos, batch size, workers and sampler, collated by mmengine's pseudo_collate. Both decode the
same frames: SampleFrames is given the indices vidpeft's dataset draws for the same (epoch,
index), since the cost of decoding a clip depends on its distance from the keyframe before it
(up to 250 frames at x264's default keyint), which would otherwise make the ratio a matter of
which random clips each side drew. Both deliver uint8 clips, as vidpeft-train's loader does,
and normalise them later on the training device (mmaction2's data preprocessor, vidpeft's
ClipNormalizer); mmaction2's batch stays a list of clips, vidpeft's is stacked. Two ratios:
vidpeft with decord, as mmaction2 (the pipelines alone), and vidpeft with its default decoder
(what vidpeft-train runs) against mmaction2 with decord (what mmaction2 runs).

Next to them: the training step rate of `--backbone` with `--method` (forward, backward and
AdamW step on random clips of the pipeline's shape, at vidpeft-train's default precision; `--backbone none` skips it), and every loader rate as a multiple of it (above 1 the loader
keeps up with the model); for `DEFAULT+device` the model's rate counts the device augmentation
too (1 / (step + augment) per clip). `--json PATH` also writes everything measured (top-level
`decoders` and `vs_mmaction2`: the first recipe's; `recipes`: every recipe's).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidpeft.config.recipes import RECIPES_DIR, load_recipe
from vidpeft.data import DataConfig, Sample, VideoDataset, build_loader
from vidpeft.data.dataset import EpochSampler
from vidpeft.data.decode import DEVICE_DECODERS, available_decoders
from vidpeft.data.pattern_video import write_video
from vidpeft.prep.transcode import EncodeSettings
from vidpeft.synthetic import MOTIONS, render

from clip_cost import device_cost, one_worker  # noqa: E402  (benchmarks/, beside this script)

PREP_X264 = EncodeSettings().x264_options()  # vidpeft-prep's default encoding (--encoding fastseek)
KINDS = {"k400": (568, 320), "ssv2": (426, 240)}  # K400-like (prepared: short side 320), SSv2-like
MMACTION_CONFIG = RECIPES_DIR / "mmaction" / "_base_" / "ssv2_vpetl.py"


def make_videos(folder: Path, count: int, size: tuple[int, int], seconds: float, fps: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(count):
        frames = render(MOTIONS[i % len(MOTIONS)], rng, size, int(seconds * fps))
        samples.append(Sample(write_video(folder / f"{i}.mp4", frames, fps, options=PREP_X264), i % len(MOTIONS)))
    return samples


def clips_in(batch) -> int:
    """Clips in a batch of build_loader (Batch) or of mmengine's pseudo_collate (dict of lists)."""
    return len(batch["inputs"]) if isinstance(batch, dict) else len(batch.indices)


def measure_loader(loader: DataLoader, batches: int) -> float:
    """Clips per second `loader` delivers over `batches` batches per worker after one warm-up batch
    (worker start-up); epochs repeat as needed. All W workers start together, so W batches are ready
    when the first is: timing fewer than W batches would measure what was prefetched, not the rate."""
    stream = itertools.chain.from_iterable(loader for _ in itertools.count())
    next(stream)
    start, clips = time.perf_counter(), 0
    for batch in itertools.islice(stream, batches * max(1, loader.num_workers)):
        clips += clips_in(batch)
    elapsed = time.perf_counter() - start
    del stream, loader  # stops the persistent workers
    gc.collect()
    return clips / elapsed


def alternate(makers: dict[str, Callable[[], DataLoader]], rounds: int, batches: int) -> dict[str, list[float]]:
    """clips/s of each loader in every round, measured in turn (order reversed every other
    round, so that neither always runs first)."""
    rates: dict[str, list[float]] = {name: [] for name in makers}
    for i in range(rounds):
        for name in (list(makers) if i % 2 == 0 else list(makers)[::-1]):
            rates[name].append(measure_loader(makers[name](), batches))
    return rates


def medians(rounds: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in rounds.items()}


def vidpeft_loaders(datasets: dict[str, VideoDataset], batch_size: int, workers: int) -> dict[str, Callable[[], DataLoader]]:
    """A fresh vidpeft-train loader per call, for each dataset."""
    return {name: (lambda ds=ds: build_loader(ds, batch_size, shuffle=True, num_workers=workers, seed=0))
            for name, ds in datasets.items()}


def paired_ratio(rates: dict[str, list[float]], name: str, to: str) -> float:
    """Median over rounds of the ratio measured within each round (cancels the machine's drift
    between rounds, which on a shared VM is larger than the differences measured)."""
    return statistics.median(a / b for a, b in zip(rates[name], rates[to]))


class MMActionDataset(Dataset):
    """mmaction2's train pipeline over vidpeft Samples, keyed like VideoDataset (epoch, index).
    Its SampleFrames step is replaced by the frame indices `indices_from` (a training
    VideoDataset) decodes for the same key, so that both pipelines decode the same clips (the
    decoding cost depends on how far a clip lies from the keyframe before it)."""

    def __init__(self, samples: list[Sample], pipeline: list[dict], indices_from: VideoDataset) -> None:
        import vidpeft.mmaction  # noqa: F401  (mmaction2 1.2.0's fixes on a current stack)
        from mmaction.registry import TRANSFORMS
        from mmengine.dataset import Compose

        self.samples, self.indices_from = samples, indices_from
        steps = [TRANSFORMS.build(step) for step in pipeline]
        split = next(i for i, step in enumerate(pipeline) if step["type"] == "SampleFrames")
        self.opening = Compose(steps[:split])
        self.rest = Compose(steps[split + 1:])
        self.clip_shape = {k: pipeline[split][k] for k in ("clip_len", "frame_interval", "num_clips")}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        sample = self.samples[index]
        results = self.opening(dict(filename=str(sample.path), label=sample.label, start_index=0, modality="RGB"))
        indices = self.indices_from.train_indices(results["total_frames"], self.indices_from.item_seed(epoch, index))
        results.update(self.clip_shape, frame_inds=indices.astype(np.int32))
        return self.rest(results)


def mmaction_pipeline(frames: int, stride: int, size: int) -> list[dict]:
    """The train_pipeline of the shipped V-PETL mmaction2 config, at this clip shape."""
    from mmengine.config import Config

    pipeline = Config.fromfile(str(MMACTION_CONFIG)).train_pipeline
    for step in pipeline:
        if step["type"] == "SampleFrames":
            step.update(clip_len=frames, frame_interval=stride)
        elif step["type"] == "MultiScaleCrop":
            step["input_size"] = size
        elif step["type"] == "Resize" and not step.get("keep_ratio", True):
            step["scale"] = (size, size)
    return pipeline


def mmaction_loader(dataset: MMActionDataset, batch_size: int, workers: int) -> DataLoader:
    from mmengine.dataset import pseudo_collate

    return DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), shuffle=True, seed=0),
                      num_workers=workers, collate_fn=pseudo_collate, persistent_workers=workers > 0)


def have_mmaction() -> bool:
    try:
        import mmaction  # noqa: F401
    except ImportError:
        return False
    return True


def worker_counts(spec: str) -> list[int]:
    """'0,1,2,all' -> [0, 1, 2, cores] without repeats."""
    counts = [(os.cpu_count() or 1) if w == "all" else int(w) for w in spec.split(",")]
    return list(dict.fromkeys(counts))


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores"


def run(args: argparse.Namespace, model_rate: Callable[[DataConfig, int], float] | None = None) -> dict:
    recipes = args.recipe.split(",")
    bases = {r: DataConfig.from_recipe(load_recipe(r, "k400"), frames=args.frames, stride=args.stride,
                                       input_size=args.size) for r in recipes}
    decoders = available_decoders() if args.decoders == "all" else args.decoders.split(",")
    workers = worker_counts(args.workers)
    compare_mmaction = args.mmaction and have_mmaction() and "decord" in available_decoders()
    result: dict = {"recipe": args.recipe, "batch_size": args.batch_size, "batches": args.batches,
                    "rounds": args.rounds, "cpus": os.cpu_count(), "load_before": os.getloadavg(), "recipes": {}}
    model, made, tmp = None, {}, tempfile.TemporaryDirectory(prefix="data_speed_")

    def videos(kind: str) -> list[Sample]:  # made once per kind, for every recipe
        if kind not in made:
            width, height = KINDS[kind]
            start = time.perf_counter()
            made[kind] = make_videos(Path(tmp.name) / kind, args.videos, (width, height), args.seconds, args.fps)
            print(f"\n{kind}-like: {args.videos} videos {width}x{height}, {args.seconds:g} s at {args.fps} fps, "
                  f"H.264 (made in {time.perf_counter() - start:.0f} s)", flush=True)
        else:
            print(f"\n{kind}-like: the same videos", flush=True)
        return made[kind]

    for recipe, base in bases.items():
        print(f"{'' if recipe == recipes[0] else chr(10)}recipe {recipe}: {base.frames} frames, {base.sampling} stride "
              f"{base.stride}, {base.train_crop} crop to {base.input_size}, randaugment {base.randaugment}, erasing "
              f"{base.random_erasing}, {base.repeated_aug} clip(s) per decode; batch {args.batch_size}, {args.batches} "
              f"timed batches per worker, medians of {args.rounds} rounds; decoders {', '.join(decoders)}; "
              f"{load_line()}", flush=True)
        if model_rate and model is None:  # the same clip shape for every recipe
            model = model_rate(base, args.batch_size)
            print(f"model training step: {model:.2f} clips/s ({load_line()})", flush=True)
            result["model_clips_per_s"] = model
        result["recipes"][recipe] = {"frames": base.frames, "stride": base.stride, "size": base.input_size,
                                     "decoders": {}, "gpu_decoders": {}, "one_worker": {}, "device_augment": {},
                                     "vs_mmaction2": {}}
        for kind in args.kinds.split(","):
            measure_kind(videos(kind), kind, recipe, base, decoders, workers, args, model,
                         compare_mmaction and recipe == "vpetl", result["recipes"][recipe])
    tmp.cleanup()
    first = result["recipes"][recipes[0]]
    result.update(decoders=first["decoders"], vs_mmaction2=first["vs_mmaction2"], load_after=os.getloadavg())
    fastest = fastest_decoder([r["decoders"] for r in result["recipes"].values()])
    print(f"\nfastest decoder (median over recipes, kinds and worker counts of its in-round ratio to the first): "
          f"{fastest}")
    result["fastest_decoder"] = fastest
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def measure_kind(samples: list[Sample], kind: str, recipe: str, base: DataConfig, decoders: list[str],
                 workers: list[int], args: argparse.Namespace, model: float | None, compare_mmaction: bool,
                 out: dict) -> None:
    """Every measurement of one recipe on one kind of video, into `out`."""
    # an epoch holds every timed batch at the most workers: epoch ends idle the workers and hide
    # scaling (the videos repeat; clips still differ by (epoch, index))
    epoch = (args.batches + 1) * max(workers + [1]) * args.batch_size
    samples = samples * -(-epoch // len(samples))
    device = device_side(samples, base, args)
    out["device_augment"][kind] = device
    out["one_worker"][kind] = one_worker_rates(samples, base, args)
    aug_model = 1 / (1 / model + device["ms_per_clip"] / 1e3) if model else None
    on_gpu = [d for d in decoders if d in DEVICE_DECODERS]
    out["decoders"][kind] = decoder_table(samples, base, [d for d in decoders if d not in on_gpu], workers, args,
                                          model, aug_model)
    if on_gpu:
        out["gpu_decoders"][kind] = in_process_table(samples, base, on_gpu, max(workers), args, model, aug_model)
    if compare_mmaction:
        out["vs_mmaction2"][kind] = versus_mmaction(samples, base, args)


def one_worker_rates(samples: list[Sample], base: DataConfig, args: argparse.Namespace) -> dict:
    """One worker's clips per CPU-second (default decoder), with and without --device-augment, alternating."""
    sets = {"cpu": VideoDataset(samples, "train", base, pixels=True),
            "device": VideoDataset(samples, "train", base.override(device_augment=True), pixels=True)}
    rates: dict[str, list[float]] = {name: [] for name in sets}
    for i in range(args.rounds):
        for name in (list(sets) if i % 2 == 0 else list(sets)[::-1]):
            rates[name].append(one_worker(sets[name], args.batches * args.batch_size, args.batch_size)[0])
    out = {**medians(rates), "ratio": paired_ratio(rates, "device", "cpu")}
    print(f"one worker ({base.decoder}, this process, one thread): {out['cpu']:.1f} clips per CPU-second; with "
          f"--device-augment {out['device']:.1f} ({out['ratio']:.2f}x; {load_line()})", flush=True)
    return out


def device_side(samples: list[Sample], base: DataConfig, args: argparse.Namespace) -> dict:
    """ms per clip of --device-augment's device side (apply_plans) on the model's device, after a warm-up."""
    cfg = base.override(device_augment=True)
    _, clips, batches = one_worker(VideoDataset(samples, "train", cfg, pixels=True), args.batches * args.batch_size,
                                   args.batch_size)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ms = device_cost(batches, cfg, clips, torch.device(device))
    print(f"--device-augment on {device}: {ms:.2f} ms per clip (apply_plans, batch {args.batch_size}, "
          f"{'synchronised' if device.startswith('cuda') else 'wall'}; {load_line()})", flush=True)
    return {"device": device, "ms_per_clip": ms}


def decoder_table(samples: list[Sample], base: DataConfig, decoders: list[str], workers: list[int],
                  args: argparse.Namespace, model: float | None, aug_model: float | None = None) -> dict:
    """clips/s of every decoder, and of the default one with --device-augment, at every worker count,
    alternating; ratio to the first; loader/model (with --device-augment: / (model step + augment))."""
    default = base.decoder if base.decoder in decoders else decoders[0]
    columns = [*decoders, f"{default}+device"]
    print(f"{'workers':>7} " + " ".join(f"{d:>11}" for d in columns)
          + f"  {'ratio to ' + decoders[0]:>24}" + ("  loader/model (per column)" if model else ""))
    table = {}
    for count in workers:
        datasets = {d: VideoDataset(samples, "train", base.override(decoder=d), pixels=True) for d in decoders}
        datasets[columns[-1]] = VideoDataset(samples, "train", base.override(decoder=default, device_augment=True),
                                             pixels=True)
        rounds = alternate(vidpeft_loaders(datasets, args.batch_size, count), args.rounds, args.batches)
        rates = medians(rounds)
        table[count] = {**rates, "ratio_to_first": {d: paired_ratio(rounds, d, decoders[0]) for d in columns[1:]}}
        ratios = " ".join(f"{table[count]['ratio_to_first'][d]:.2f}x" for d in columns[1:])
        line = f"{count:7d} " + " ".join(f"{rates[d]:11.2f}" for d in columns) + f"  {ratios:>24}"
        if model:
            line += "  " + " ".join(f"{rates[d] / model:.2f}" for d in decoders) + f" {rates[columns[-1]] / aug_model:.2f}"
        print(line + f"  ({load_line()})", flush=True)
    if 1 in table:  # scaling efficiency: N workers' rate / (N x one worker's); 1.0 = perfect
        for count in (c for c in table if c > 1):
            table[count]["scaling"] = {d: table[count][d] / (count * table[1][d]) for d in columns}
            print(f"scaling efficiency at {count} workers: "
                  + ", ".join(f"{d} {table[count]['scaling'][d]:.2f}" for d in columns), flush=True)
    return table


def in_process_table(samples: list[Sample], base: DataConfig, decoders: list[str], workers: int,
                     args: argparse.Namespace, model: float | None, aug_model: float | None) -> dict:
    """clips/s of decoders that decode in the training process (0 workers), with the CPU transforms and with
    --device-augment, against the default decoder with --device-augment at `workers` workers, alternating;
    ratios to that; loader/model as in decoder_table."""
    peer = f"{base.decoder}+device@{workers}"
    sets = {}
    for decoder in decoders:
        sets[decoder] = VideoDataset(samples, "train", base.override(decoder=decoder), pixels=True)
        sets[f"{decoder}+device"] = VideoDataset(samples, "train", base.override(decoder=decoder, device_augment=True),
                                                 pixels=True)
    makers = vidpeft_loaders(sets, args.batch_size, 0)
    makers.update(vidpeft_loaders({peer: VideoDataset(samples, "train", base.override(device_augment=True),
                                                      pixels=True)}, args.batch_size, workers))
    rounds = alternate(makers, args.rounds, args.batches)
    rates = medians(rounds)
    out = {**rates, "ratio_to_peer": {name: paired_ratio(rounds, name, peer) for name in sets}}
    for name in sets:
        per_model = model and (rates[name] / (aug_model if name.endswith("+device") else model))
        print(f"{name} (0 workers, decoding in this process): {rates[name]:.2f} clips/s, "
              f"{out['ratio_to_peer'][name]:.2f}x {peer} ({rates[peer]:.2f})"
              + (f"; loader/model {per_model:.2f}" if model else "") + f" ({load_line()})", flush=True)
    return out


def versus_mmaction(samples: list[Sample], base: DataConfig, args: argparse.Namespace) -> dict:
    """vidpeft's training pipeline against mmaction2's on the same videos and frames, alternating:
    with decord as mmaction2 (the pipelines alone), and with vidpeft's default decoder."""
    default = DataConfig().decoder
    ours = {"vidpeft": VideoDataset(samples, "train", base.override(decoder="decord"), pixels=True)}
    if default != "decord":
        ours[f"vidpeft ({default})"] = VideoDataset(samples, "train", base.override(decoder=default), pixels=True)
    theirs = MMActionDataset(samples, mmaction_pipeline(base.frames, base.stride, base.input_size),
                             indices_from=ours["vidpeft"])
    out = {}
    for count in sorted({0, 2} | {c for c in worker_counts(args.workers) if c > 2}):
        makers = vidpeft_loaders(ours, args.batch_size, count)
        makers["mmaction2"] = lambda n=count: mmaction_loader(theirs, args.batch_size, n)
        rounds = alternate(makers, args.rounds, args.batches)
        rates = medians(rounds)
        out[count] = {**rates, "ratio": paired_ratio(rounds, "vidpeft", "mmaction2"), "rounds": rounds}
        print(f"vidpeft vpetl pipeline / mmaction2 1.2, both decord ({count} workers): {out[count]['ratio']:.2f}x "
              f"({rates['vidpeft']:.2f} vs {rates['mmaction2']:.2f} clips/s; {load_line()})", flush=True)
        if default != "decord":
            name = f"vidpeft ({default})"
            out[count]["ratio_default_decoder"] = paired_ratio(rounds, name, "mmaction2")
            print(f"vidpeft vpetl pipeline with its default decoder {default} / mmaction2 1.2 with decord ({count} "
                  f"workers): {out[count]['ratio_default_decoder']:.2f}x ({rates[name]:.2f} vs {rates['mmaction2']:.2f} "
                  f"clips/s)", flush=True)
    return out


def fastest_decoder(recipes: list[dict]) -> str:
    """The decoder with the highest median (over recipes, kinds and worker counts) paired ratio to the
    first (the --device-augment column is not a decoder)."""
    scores: dict[str, list[float]] = {}
    for table in (t for tables in recipes for t in tables.values()):
        for row in table.values():
            first = next(iter(row))
            scores.setdefault(first, []).append(1.0)
            for decoder, ratio in row["ratio_to_first"].items():
                if not decoder.endswith("+device"):
                    scores.setdefault(decoder, []).append(ratio)
    return max(scores, key=lambda d: statistics.median(scores[d]))


def training_rate(backbone: str, method: str, steps: int, batch: int,
                  device: str | None = None) -> Callable[[DataConfig, int], float]:
    """clips/s of full training steps of `backbone` + `method` at the data config's clip shape
    (vidpeft-train's default precision), on `device` (default: cuda if available)."""

    def rate(cfg: DataConfig, _: int) -> float:
        import torch.nn.functional as F

        from vidpeft import build_model
        from vidpeft.engine.precision import autocast

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        model = build_model(backbone, method, num_classes=400).to(dev).train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        clips = torch.randn(batch, 3, cfg.frames, cfg.input_size, cfg.input_size, device=dev)
        labels = torch.zeros(batch, dtype=torch.long, device=dev)
        timings = []
        for _ in range(steps + 1):  # the first step warms up
            start = time.perf_counter()
            with autocast(dev, True)[0]:  # vidpeft-train's default precision on this device
                loss = F.cross_entropy(model(clips), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            timings.append(time.perf_counter() - start)
        print(f"model: {backbone} + {method}, batch {batch} x {cfg.frames} x {cfg.input_size}^2 on {dev}, median "
              f"of {steps} steps {float(np.median(timings[1:])):.2f} s/step")
        return batch / float(np.median(timings[1:]))

    return rate


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=24, help="videos per kind")
    parser.add_argument("--kinds", default="k400,ssv2", help="k400 (568x320), ssv2 (426x240), comma-separated")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--stride", type=int, default=4, help="frame stride (dense sampling)")
    parser.add_argument("--size", type=int, default=224, help="crop size (input_size)")
    parser.add_argument("--recipe", default="vpetl", help="training pipelines, comma-separated: vpetl, videomae")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per worker (per measurement with 0)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; figures are their medians")
    parser.add_argument("--workers", default="0,1,2,all", help="loader worker counts, comma-separated ('all' = cores)")
    parser.add_argument("--decoders", default="all", help="comma-separated, or 'all' installed")
    parser.add_argument("--no-mmaction", dest="mmaction", action="store_false",
                        help="skip the comparison with mmaction2's loader")
    parser.add_argument("--backbone", default="videomae-b", help="model whose step rate is shown ('none': skip)")
    parser.add_argument("--method", default="adaptformer", help="PEFT method of that model")
    parser.add_argument("--model-batch", type=int, default=1, help="clips per timed model step")
    parser.add_argument("--model-steps", type=int, default=2, help="timed model steps (after one warm-up)")
    parser.add_argument("--device", help="device of the model step: cpu or cuda (default: cuda if available)")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    model = None if args.backbone == "none" else training_rate(args.backbone, args.method, args.model_steps,
                                                               args.model_batch, args.device)
    return run(args, model_rate=model)


if __name__ == "__main__":
    main()
