"""What one training clip costs a loader worker, in CPU time, and where it goes.

    python benchmarks/clip_cost.py [--against REV] [--kinds k400,ssv2] [--recipes vpetl,videomae]

Videos: `--videos` generated clips per kind (vidpeft.synthetic: a textured object moving over a
noisy background; generated footage compresses unlike real footage, so sizes and decode costs are
indicative), written as the raw download would be (K400-like: H.264 mp4 568x320, 10 s at 30 fps;
SSv2-like: VP9 webm 427x240, 4 s at 12 fps) and converted by vidpeft-prep's transcode.

Three tables:
- `--encodings`: per vidpeft-prep --encoding: file size, PSNR against the generated frames, and the
  CPU ms per training clip of reading it (PyAV, each recipe's clip);
- the breakdown: CPU ms per clip of each stage of one worker (open, seek, decoding the frames
  before the first needed one, decoding the needed ones, colour conversion, RandAugment, crop and
  resize, normalisation, erasing, collation) and, in the main process, receiving the batch from
  one worker (hand-over), for each recipe and kind, on each encoding;
- `--against REV` (a git revision): one worker's clips per CPU-second, this checkout's prep output
  and loader against REV's prep output and loader (its vidpeft, extracted with git archive, run in
  a child process), alternating in every round; the ratio is the median of in-round ratios;
- `--decoders pyav,decord` (and `--decord2-site DIR`): one worker's clips per CPU-second of each
  decoder on this vidpeft's prep output, each in a child process, alternating in every round; the
  ratio to the first is the median of in-round ratios. decord2 installs as the module `decord`, so
  it cannot sit beside decord: `pip install --no-deps --target DIR decord2` puts it in DIR, and its
  column runs decoder `decord` with DIR first on the child's path (checked: its decord came from DIR).
One worker's work is measured in one process on one thread: items of the training VideoDataset
(vidpeft-train's uint8 hand-over), collated in batches; repeated augmentation counts every clip.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

KINDS = {  # raw layout (vidpeft.synthetic), size, seconds, fps, short side vidpeft-prep gives it
    "k400": ("k400", (568, 320), 10.0, 30, 320),
    "ssv2": ("ssv2", (427, 240), 4.0, 12, 0),
}


def _load_recipe(name: str, dataset: str) -> dict:
    import vidpeft.data

    if hasattr(vidpeft.data, "load_recipe"):  # an older vidpeft (--against), with its own recipes
        return vidpeft.data.load_recipe(name, dataset)
    from vidpeft.config.recipes import load_recipe

    return load_recipe(name, dataset)


def make_raw(folder: Path, kind: str, count: int) -> list[tuple[Path, np.ndarray]]:
    """`count` raw videos of `kind` and their frames (as rendered, for PSNR)."""
    from vidpeft.synthetic import MOTIONS, encode, render

    layout, size, seconds, fps, _ = KINDS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for i in range(count):
        frames = np.stack(list(render(MOTIONS[i % len(MOTIONS)], np.random.default_rng(i), size, int(seconds * fps))))
        path = folder / f"{i}.{'webm' if layout == 'ssv2' else 'mp4'}"
        encode(frames, path, layout, fps=fps)
        videos.append((path, frames))
    return videos


def prepare(raw: list[Path], out: Path, kind: str, encoding: str | None) -> list[str]:
    """vidpeft-prep's conversion of `raw` into `out` (encoding None: this vidpeft's default)."""
    from vidpeft.prep.transcode import EncodeSettings, transcode

    out.mkdir(parents=True, exist_ok=True)
    settings = EncodeSettings(short_side=KINDS[kind][4])
    if encoding is not None:
        settings = EncodeSettings(short_side=KINDS[kind][4], encoding=encoding)
    paths = []
    for source in raw:
        transcode(source, out / f"{source.stem}.mp4", settings)
        paths.append(str(out / f"{source.stem}.mp4"))
    return paths


def worker_cost(paths: list[str], recipe: str, kind: str, items: int, batch_size: int,
                stages: bool = False, decoder: str = "pyav") -> dict:
    """One worker's clips per CPU-second (and with `stages`, CPU ms per clip of each stage)."""
    from contextlib import nullcontext

    from vidpeft.data import Sample, VideoDataset

    cfg = _data_config(recipe, kind, decoder)
    dataset = VideoDataset([Sample(Path(p), 0) for p in paths], "train", cfg, pixels=True)
    if stages:
        from vidpeft.data.stages import timing
    with timing() if stages else nullcontext() as times:
        rate, clips, batches = one_worker(dataset, items, batch_size)
    import vidpeft

    result = {"clips_per_cpu_s": rate, "clips": clips, "vidpeft": vidpeft.__file__}
    if decoder == "decord":  # which decord (decord or decord2, both import as decord)
        import decord

        result["decord"] = decord.__file__
    if times is not None:
        result["ms_per_clip"] = {stage: 1e3 * s / clips for stage, s in times.seconds.items()}
    if getattr(cfg, "device_augment", False):
        result["device_ms_per_clip"] = device_cost(batches, cfg, sum(len(b.indices) for b in batches))
    return result


KEPT_BATCHES = 2


def one_worker(dataset, items: int, batch_size: int) -> tuple[float, int, list]:
    """A loader worker's work, here on one thread: `items` training items of `dataset` (epoch 1, its
    videos in turn) collated by `batch_size`. Returns clips per CPU-second, clips (repeated
    augmentation counts every clip) and the first KEPT_BATCHES batches (a worker lets a batch go once it
    is handed over: keeping them all would make every allocation fault in fresh pages, which
    --device-augment's full decoded frames turned into 2-3 ms per clip of this measurement)."""
    from vidpeft.data import collate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    keys = [(1, i % len(dataset)) for i in range(items)]
    batches, clips = [], 0
    start = time.process_time()
    for first in range(0, items, batch_size):
        batch = collate([dataset[key] for key in keys[first:first + batch_size]], repeated=dataset.cfg.repeated_aug > 1)
        clips += len(batch.indices)
        if len(batches) < KEPT_BATCHES:
            batches.append(batch)
        del batch
    cpu = time.process_time() - start
    torch.set_num_threads(threads)
    return clips / cpu, clips, batches


def _data_config(recipe: str, kind: str, decoder: str = "pyav"):
    """A recipe's DataConfig; `RECIPE:device` with data.device_augment on (workers decode and draw only)."""
    from vidpeft.data import DataConfig

    name, _, where = recipe.partition(":")
    cfg = DataConfig.from_recipe(_load_recipe(name, kind), decoder=decoder)
    return cfg.override(device_augment=True) if where == "device" else cfg


def device_cost(batches: list, cfg, clips: int, device: torch.device | None = None) -> float:
    """ms per clip of the device side of --device-augment (RandAugment, crop, resize, flip, normalise,
    erasing) on `device` (default: CUDA when there is one; synchronised), after one warm-up batch."""
    from vidpeft.data.device_augment import apply_plans

    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    apply_plans(batches[0].inputs, cfg.input_size, cfg.mean, cfg.std, device)
    sync()
    start = time.perf_counter()
    for batch in batches:
        apply_plans(batch.inputs, cfg.input_size, cfg.mean, cfg.std, device)
    sync()
    return 1e3 * (time.perf_counter() - start) / clips


def handover_ms(paths: list[str], recipe: str, kind: str, batch_size: int, batches: int) -> float:
    """CPU ms per clip the main process spends receiving batches from one loader worker."""
    from vidpeft.data import Sample, VideoDataset, build_loader

    cfg = _data_config(recipe, kind)
    dataset = VideoDataset([Sample(Path(p), 0) for p in paths], "train", cfg, pixels=True)
    loader = build_loader(dataset, batch_size, num_workers=1)
    stream = iter(loader)
    next(stream)
    time.sleep(2.0)  # let the worker fill its prefetch queue: what follows is receiving only
    start, clips = time.process_time(), 0
    for _ in range(min(batches, len(loader) - 1)):
        clips += len(next(stream).indices)
    cpu = time.process_time() - start
    del stream, loader
    return 1e3 * cpu / max(clips, 1)


def psnr(path: Path, frames: np.ndarray) -> float:
    import av

    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    if decoded.shape != frames.shape:  # prep rounded the size to even: compare the common part
        h, w = min(decoded.shape[1], frames.shape[1]), min(decoded.shape[2], frames.shape[2])
        decoded, frames = decoded[:, :h, :w], frames[:, :h, :w]
    mse = float(np.mean((decoded.astype(np.float64) - frames) ** 2))
    return 10 * np.log10(255 ** 2 / mse)


def child(spec: str) -> None:
    """--child: run one request (JSON) with whatever vidpeft is importable; print the JSON answer."""
    request = json.loads(spec)
    if request["do"] == "prepare":
        answer = prepare([Path(p) for p in request["raw"]], Path(request["out"]), request["kind"], None)
    else:
        answer = worker_cost(request["paths"], request["recipe"], request["kind"], request["items"], request["batch"],
                             decoder=request.get("decoder", "pyav"))
    print(json.dumps(answer))


def run_child(request: dict, pythonpath: str) -> dict | list:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(request)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def against(rev: str, raw: dict[str, list[Path]], tmp: Path, args: argparse.Namespace) -> dict:
    """One worker's clips per CPU-second: REV's prep + loader against this checkout's, alternating."""
    root = Path(__file__).resolve().parents[1]
    old_tree = tmp / "old_tree"
    old_tree.mkdir()
    # its package and its recipes (vidpeft/resources links to configs/ and annotations/)
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "vidpeft", "configs", "annotations"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
    sides = {"old": str(old_tree), "new": str(root)}
    result = {}
    for kind, videos in raw.items():
        paths = {side: run_child({"do": "prepare", "raw": [str(p) for p in videos], "kind": kind,
                                  "out": str(tmp / f"{side}_{kind}")}, tree) for side, tree in sides.items()}
        for recipe in args.recipes.split(","):
            rates: dict[str, list[float]] = {"old": [], "new": []}
            for i in range(args.rounds):
                for side in (("old", "new") if i % 2 == 0 else ("new", "old")):
                    answer = run_child({"do": "cost", "paths": paths[side], "kind": kind,
                                        "recipe": recipe if side == "new" else recipe.partition(":")[0],
                                        "items": args.items, "batch": args.batch_size}, sides[side])
                    assert answer["vidpeft"].startswith(sides[side]), answer["vidpeft"]  # the intended code ran
                    rates[side].append(answer["clips_per_cpu_s"])
            ratio = statistics.median(n / o for n, o in zip(rates["new"], rates["old"]))
            result[f"{recipe}/{kind}"] = {"old": statistics.median(rates["old"]), "new": statistics.median(rates["new"]),
                                         "ratio": ratio}
            print(f"{recipe:8s} {kind}-like: one worker {statistics.median(rates['old']):6.2f} -> "
                  f"{statistics.median(rates['new']):6.2f} clips per CPU-second: {ratio:.2f}x "
                  f"({rev} prep + loader -> this checkout's; medians of {args.rounds} alternating rounds)", flush=True)
    return result


def decoders_table(raw: dict[str, list[Path]], tmp: Path, args: argparse.Namespace) -> dict:
    """One worker's clips per CPU-second of each decoder, each in a child process, alternating."""
    root = str(Path(__file__).resolve().parents[1])
    paths_of = {name: root for name in args.decoders.split(",")}  # column -> the child's PYTHONPATH
    if args.decord2_site:
        paths_of["decord2"] = os.pathsep.join([str(Path(args.decord2_site).resolve()), root])
    columns, site = list(paths_of), paths_of.get("decord2", "").split(os.pathsep)[0]
    print(f"\none worker's clips per CPU-second by decoder (vidpeft-prep's default encoding; medians of "
          f"{args.rounds} alternating rounds; ratio: median of in-round ratios to {columns[0]})")
    print(f"{'recipe':10s} {'kind':5s} " + " ".join(f"{c:>9s}" for c in columns) + "  ratios")
    result = {}
    for kind, videos in raw.items():
        paths = prepare(videos, tmp / f"decoders_{kind}", kind, None)
        for recipe in args.recipes.split(","):
            rates: dict[str, list[float]] = {c: [] for c in columns}
            for i in range(args.rounds):
                for column in (columns if i % 2 == 0 else columns[::-1]):
                    decoder = "decord" if column == "decord2" else column
                    answer = run_child({"do": "cost", "paths": paths, "kind": kind, "recipe": recipe, "decoder": decoder,
                                        "items": args.items, "batch": args.batch_size}, paths_of[column])
                    if decoder == "decord":  # the intended decord ran
                        assert (column == "decord2") == bool(site and answer["decord"].startswith(site)), answer
                    rates[column].append(answer["clips_per_cpu_s"])
            ratios = {c: statistics.median(a / b for a, b in zip(rates[c], rates[columns[0]])) for c in columns[1:]}
            result[f"{recipe}/{kind}"] = {"clips_per_cpu_s": {c: statistics.median(r) for c, r in rates.items()},
                                         "rounds": rates, "ratio_to_first": ratios}
            print(f"{recipe:10s} {kind:5s} " + " ".join(f"{statistics.median(rates[c]):9.1f}" for c in columns)
                  + "  " + " ".join(f"{c} {r:.2f}x" for c, r in ratios.items()), flush=True)
    return result


def encodings_table(raw: dict[str, list[tuple[Path, np.ndarray]]], tmp: Path, args: argparse.Namespace) -> dict:
    from vidpeft.prep.transcode import ENCODINGS

    table: dict = {}
    print(f"{'kind':6s} {'encoding':9s} {'size':>9s} {'x x264':>7s} {'PSNR dB':>8s}  "
          + "  ".join(f"{r + ' ms/clip':>17s}" for r in args.recipes.split(",")))
    for kind, videos in raw.items():
        for encoding in sorted(ENCODINGS, key=lambda e: e != "x264"):  # the old encoding first: sizes are x it
            paths = prepare([p for p, _ in videos], tmp / f"{encoding}_{kind}", kind, encoding)
            size = sum(Path(p).stat().st_size for p in paths)
            quality = statistics.mean(psnr(Path(p), frames) for p, (_, frames) in zip(paths, videos))
            decode = {}
            for recipe in args.recipes.split(","):
                cost = worker_cost(paths, recipe, kind, args.items, args.batch_size, stages=True)["ms_per_clip"]
                decode[recipe] = sum(ms for stage, ms in cost.items() if stage.startswith(("open", "seek", "decode")))
            table.setdefault(kind, {})[encoding] = {"bytes": size, "psnr": quality, "decode_ms_per_clip": decode}
            first = next(iter(table[kind].values()))["bytes"]
            print(f"{kind:6s} {encoding:9s} {size / 1e3:7.0f}kB {size / first:6.2f}x {quality:8.2f}  "
                  + "  ".join(f"{decode[r]:17.1f}" for r in decode), flush=True)
    return table


def breakdown(raw: dict[str, list[tuple[Path, np.ndarray]]], tmp: Path, args: argparse.Namespace) -> dict:
    from vidpeft.prep.transcode import ENCODINGS

    result: dict = {}
    for kind, videos in raw.items():
        for encoding in ENCODINGS:
            out = tmp / f"{encoding}_{kind}"
            paths = (sorted(str(p) for p in out.glob("*.mp4")) if out.is_dir()
                     else prepare([p for p, _ in videos], out, kind, encoding))
            for recipe in args.recipes.split(","):
                cost = worker_cost(paths, recipe, kind, args.items, args.batch_size, stages=True)
                cost["ms_per_clip"]["hand-over (main process)"] = handover_ms(paths, recipe, kind, args.batch_size, 4)
                if "device_ms_per_clip" in cost:  # not the worker's CPU: the training device's time
                    cost["ms_per_clip"]["augment on the training device (wall)"] = cost["device_ms_per_clip"]
                result[f"{recipe}/{kind}/{encoding}"] = cost
    stages = list(dict.fromkeys(s for cost in result.values() for s in cost["ms_per_clip"]))
    print("\nCPU ms per clip, one worker (PyAV), by stage; columns recipe/kind/encoding")
    print(f"{'stage':42s} " + " ".join(f"{c:>24s}" for c in result))
    for stage in stages:
        print(f"{stage:42s} " + " ".join(f"{cost['ms_per_clip'].get(stage, 0.0):24.2f}" for cost in result.values()))
    print(f"{'clips per CPU-second (worker)':42s} " + " ".join(f"{cost['clips_per_cpu_s']:24.1f}" for cost in result.values()))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="k400,ssv2")
    parser.add_argument("--recipes", default="vpetl,videomae,vpetl:device,videomae:device",
                        help="recipes measured; RECIPE:device with --device-augment (the workers decode and draw, "
                        "the training device augments)")
    parser.add_argument("--videos", type=int, default=4, help="videos per kind")
    parser.add_argument("--items", type=int, default=24, help="items per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of --against")
    parser.add_argument("--against", metavar="REV", help="git revision whose prep + loader is the baseline")
    parser.add_argument("--decoders", help="compare one worker's clips per CPU-second of these decoders "
                        "(comma-separated, e.g. pyav,decord), each in a child process")
    parser.add_argument("--decord2-site", metavar="DIR", help="with --decoders: also decord2, installed in DIR by "
                        "`pip install --no-deps --target DIR decord2` (it imports as decord)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    parser.add_argument("--no-encodings", dest="encodings", action="store_false")
    parser.add_argument("--json", help="also write everything measured to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return {}
    one, five, _ = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)", flush=True)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="clip_cost_") as name:
        tmp = Path(name)
        raw = {kind: make_raw(tmp / f"raw_{kind}", kind, args.videos) for kind in args.kinds.split(",")}
        if args.encodings:
            result["encodings"] = encodings_table(raw, tmp, args)
        if args.breakdown:
            result["breakdown"] = breakdown(raw, tmp, args)
        if args.decoders:
            result["decoders"] = decoders_table({k: [p for p, _ in v] for k, v in raw.items()}, tmp, args)
        if args.against:
            result["against"] = against(args.against, {k: [p for p, _ in v] for k, v in raw.items()}, tmp, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
