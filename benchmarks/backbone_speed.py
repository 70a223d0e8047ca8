"""Forward+backward time and peak memory: vidpeft's ViT-B and Swin-B against the reference
implementations (transformers' VideoMAE with its SDPA attention, torchvision's swin3d_b).

    python benchmarks/backbone_speed.py [--frames 16 --swin-frames 8 --size 224 --batch 1 --repeats 3]

Every measurement runs in a fresh process, so peak memory (the process's max RSS) is not
polluted by another model. Times are the best of the timed iterations (the machine is
shared, so the minimum is the least disturbed figure), as wall-clock seconds and as the
process's CPU seconds (user + system over all threads, less sensitive to other load). Two memory figures are printed: the peak RSS of the whole
process, and the peak above the RSS measured after building the model and the input (the
training overhead: activations, gradients and workspaces; it removes the difference in
what the two libraries import and is the part our code controls).
"""
from __future__ import annotations

import argparse
import json
import time

from vidpeft.bench.measure import current_rss_mb, peak_rss_mb, run_fresh

IMPLEMENTATIONS = {
    "vit": ("vidpeft videomae-b", "transformers VideoMAE (sdpa)"),
    "swin": ("vidpeft videoswin-b", "torchvision swin3d_b"),
}


def build(impl: str, frames: int, size: int):
    """(model, function from a (B, 3, T, H, W) clip to logits)."""
    if impl == "vidpeft videomae-b":
        from vidpeft.backbones import build_backbone

        model = build_backbone("videomae-b", 400)
        return model, model
    if impl == "transformers VideoMAE (sdpa)":
        from transformers import VideoMAEConfig, VideoMAEForVideoClassification

        config = VideoMAEConfig(num_frames=frames, image_size=size, num_labels=400, attn_implementation="sdpa")
        model = VideoMAEForVideoClassification(config)
        return model, lambda x: model(pixel_values=x.transpose(1, 2)).logits
    if impl == "vidpeft videoswin-b":
        from vidpeft.backbones import build_backbone

        model = build_backbone("videoswin-b", 400)
        return model, model
    if impl == "torchvision swin3d_b":
        from torchvision.models.video import swin3d_b

        model = swin3d_b(num_classes=400)
        return model, model
    raise ValueError(f"unknown implementation {impl!r}")


def worker(impl: str, frames: int, size: int, batch: int, repeats: int) -> dict:
    import torch

    torch.manual_seed(0)
    model, forward = build(impl, frames, size)
    model.train()
    x = torch.randn(batch, 3, frames, size, size)
    target = torch.randint(0, 400, (batch,))
    baseline = current_rss_mb()
    wall, cpu = [], []
    for i in range(repeats + 1):  # the first iteration warms up allocator and kernels, not timed
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(forward(x), target)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    peak = peak_rss_mb()
    return {"impl": impl, "seconds": min(wall), "cpu_seconds": min(cpu), "peak_mb": peak,
            "baseline_mb": baseline, "threads": torch.get_num_threads()}


def measure(impl: str, frames: int, args) -> dict:
    return run_fresh(__file__, ["--worker", impl, "--frames", str(frames), "--size", str(args.size),
                                "--batch", str(args.batch), "--repeats", str(args.repeats)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16, help="clip length for ViT-B (default 16)")
    parser.add_argument("--swin-frames", type=int, default=8, help="clip length for Swin-B (default 8)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations after one warm-up")
    parser.add_argument("--only", choices=sorted(IMPLEMENTATIONS), help="run one pair")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.frames, args.size, args.batch, args.repeats)))
        return
    for pair, (ours, reference) in IMPLEMENTATIONS.items():
        if args.only and pair != args.only:
            continue
        frames = args.frames if pair == "vit" else args.swin_frames
        print(f"{pair}: batch {args.batch} x 3 x {frames} x {args.size} x {args.size}, "
              f"forward+backward, best of {args.repeats}")
        results = [measure(impl, frames, args) for impl in (ours, reference)]
        for r in results:
            print(f"  {r['impl']:<30} {r['seconds']:8.3f} s   CPU {r['cpu_seconds']:8.3f} s   "
                  f"peak RSS {r['peak_mb']:6.0f} MB   above baseline {r['peak_mb'] - r['baseline_mb']:6.0f} MB   "
                  f"({r['threads']} threads)")
        a, b = results
        print(f"  ratio ours/reference: time {a['seconds'] / b['seconds']:.2f}x   "
              f"CPU time {a['cpu_seconds'] / b['cpu_seconds']:.2f}x   "
              f"peak RSS {a['peak_mb'] / b['peak_mb']:.2f}x   "
              f"above baseline {(a['peak_mb'] - a['baseline_mb']) / (b['peak_mb'] - b['baseline_mb']):.2f}x")


if __name__ == "__main__":
    main()
