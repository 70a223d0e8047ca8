"""vidpeft-prep vs the mmaction2-style baseline (one ffmpeg process per video) on one video set.

    python benchmarks/prep_speed.py [--videos 40 --seconds 10 --size 640x480 --workers N]

Generates a Kinetics-400-layout set of H.264 mp4 videos (with audio), converts it with
`vidpeft-prep k400` and with a pool of the same size running one ffmpeg per video (ffmpeg
from the imageio-ffmpeg wheel, same x264 preset / crf / short side), and prints videos/s
for both and their ratio. The two alternate --repeat times so both see the same machine
load; the best run of each counts (the median is printed too). CPU seconds per video are
printed as well: on a machine shared with other jobs they compare the two fairly."""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.pool import ThreadPool
from pathlib import Path

from vidpeft.prep.transcode import probe
from vidpeft.synthetic import make_dataset


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        sys.exit("prep_speed: the baseline needs ffmpeg from imageio-ffmpeg: "
                 "pip install 'vidpeft[bench]' (or pip install imageio-ffmpeg)")
    return imageio_ffmpeg.get_ffmpeg_exe()


def baseline(ffmpeg: str, videos: list[Path], out: Path, workers: int, short_side: int,
             preset: str, crf: int, landscape: bool) -> int:
    """mmaction2's resize_videos.py recipe: scale=-2:S, libx264, no audio; argv, not a shell."""
    scale = f"scale=-2:{short_side}" if landscape else f"scale={short_side}:-2"

    def one(i_src: tuple[int, Path]) -> int:
        i, src = i_src
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
               "-vf", scale, "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
               "-pix_fmt", "yuv420p", "-an", str(out / f"{i}.mp4")]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode

    out.mkdir(parents=True)
    with ThreadPool(workers) as pool:
        codes = pool.map(one, list(enumerate(videos)))
    return sum(code == 0 for code in codes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=40)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--size", default="640x480", help="WxH of the generated videos")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--short-side", type=int, default=320)
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--repeat", type=int, default=3, help="alternating runs of each; best counts")
    p.add_argument("--keep", type=Path, help="work here and keep the files (default: temp dir)")
    args = p.parse_args()
    width, height = (int(x) for x in args.size.lower().split("x"))
    ffmpeg = _ffmpeg()
    classes = next(c for c in range(8, 0, -1) if args.videos % c == 0)
    with tempfile.TemporaryDirectory(prefix="vidpeft-bench-") as tmp:
        work = args.keep or Path(tmp)
        raw = work / "raw"
        t = time.perf_counter()
        made = make_dataset("k400", raw, classes=classes, per_class=args.videos // classes,
                            size=(width, height), frames=round(args.seconds * args.fps),
                            fps=args.fps, seed=0)
        print(f"generated {len(made)} videos ({args.seconds:g} s, {width}x{height} @ "
              f"{args.fps} fps, H.264 + AAC) in {time.perf_counter() - t:.1f} s")
        n = len(made)
        ours, base, ours_cpu, base_cpu = [], [], [], []
        for r in range(args.repeat):  # alternate, so both see the same machine load
            out = work / f"vidpeft-{r}"
            cmd = [sys.executable, "-m", "vidpeft.cli.prep", "k400", "--src", str(raw),
                   "--out", str(out), "--workers", str(args.workers),
                   "--short-side", str(args.short_side), "--preset", args.preset,
                   "--crf", str(args.crf), "--no-progress"]
            t, c = time.perf_counter(), _children_cpu()
            code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
            ours.append(time.perf_counter() - t)
            report = json.loads((out / "prep_report.json").read_text())
            ours_cpu.append(_children_cpu() - c + report["cpu_seconds"])  # main + workers
            ours_ok = len(list((out / "videos").rglob("*.mp4")))
            t, c = time.perf_counter(), _children_cpu()
            base_ok = baseline(ffmpeg, [v.path for v in made], work / f"baseline-{r}",
                               args.workers, args.short_side, args.preset, args.crf,
                               width >= height)
            base.append(time.perf_counter() - t)
            base_cpu.append(_children_cpu() - c)
            print(f"run {r + 1}: vidpeft-prep {n / ours[-1]:.2f} videos/s ({ours_ok}/{n} ok, "
                  f"exit {code}), ffmpeg baseline {n / base[-1]:.2f} videos/s "
                  f"({base_ok}/{n} ok)")

        sample = probe(next((work / "baseline-0").glob("*.mp4")))
        print(f"settings: workers {args.workers}, libx264 preset {args.preset} crf {args.crf}, "
              f"short side {args.short_side} (output {sample.width}x{sample.height}), "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"vidpeft-prep     : {n / min(ours):6.2f} videos/s (best of {args.repeat}; "
              f"median {n / statistics.median(ours):.2f})")
        print(f"ffmpeg baseline  : {n / min(base):6.2f} videos/s (best of {args.repeat}; "
              f"median {n / statistics.median(base):.2f})")
        print(f"ratio vidpeft/baseline: {min(base) / min(ours):.2f}x (best), "
              f"{statistics.median(base) / statistics.median(ours):.2f}x (median)")
        print(f"CPU seconds per video (load-independent): vidpeft-prep "
              f"{sum(ours_cpu) / n / args.repeat:.3f}, ffmpeg baseline "
              f"{sum(base_cpu) / n / args.repeat:.3f}, ratio baseline/vidpeft "
              f"{sum(base_cpu) / sum(ours_cpu):.2f}x")


if __name__ == "__main__":
    main()
