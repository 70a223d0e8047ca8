"""Our backbones against the libraries users would pick instead, each pair in one process with the same
input, alternated round by round (ratios: medians of in-round ratios):

- ViT-B full fine-tuning step, 16x224, batch 8, and inference, batch 32, against transformers' VideoMAE (SDPA);
- Swin-B full fine-tuning step, 8x224, batch 8, against torchvision's swin3d_b (stochastic depth 0.1 in both).

    python benchmarks/peers.py [--amp bf16] [--rounds 10] [--json PATH]
    python benchmarks/peers.py --quick        # micro configurations of the same classes: a CPU smoke test

A step is forward, cross-entropy, backward and AdamW; random weights. Printed per pair: each one's median
time, the ratio, peak memory (CUDA: max allocated over what was allocated before the model was built; not
measured on CPU, where the process's resident set is both models'), and each one's MFU (FLOPs counted by
torch.utils.flop_counter over the step time, against a matrix product timed on the device).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from vidpeft.bench.flops import count_flops, matrix_rate
from vidpeft.bench.worker import alternated_all, median_ratio

NUM_CLASSES = 400


def vit_pair(quick: bool, frames: int, size: int):
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    from vidpeft.backbones import build_backbone

    ours = build_backbone("videomae-micro" if quick else "videomae-b", NUM_CLASSES)
    block = ours.blocks[0]
    config = VideoMAEConfig(num_frames=frames, image_size=size, num_labels=NUM_CLASSES, hidden_size=ours.num_features,
                            num_hidden_layers=len(ours.blocks), num_attention_heads=block.attn.num_heads,
                            intermediate_size=block.mlp.fc1.out_features, attn_implementation="sdpa")
    theirs = VideoMAEForVideoClassification(config)
    return ("vidpeft videomae", ours, ours), ("transformers VideoMAE", theirs,
                                              lambda x: theirs(pixel_values=x.transpose(1, 2)).logits)


def swin_pair(quick: bool, frames: int, size: int):
    from torchvision.models.video import swin3d_b
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    from vidpeft.backbones import build_backbone

    if quick:
        ours = build_backbone("videoswin-micro", NUM_CLASSES, drop_path_rate=0.1)
        theirs = SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8],
                                   window_size=[2, 4, 4], stochastic_depth_prob=0.1, num_classes=NUM_CLASSES)
    else:
        ours = build_backbone("videoswin-b", NUM_CLASSES, drop_path_rate=0.1)
        theirs = swin3d_b(num_classes=NUM_CLASSES)  # window 8x7x7, stochastic depth 0.1: the same as ours
    return ("vidpeft videoswin", ours, ours), ("torchvision swin3d", theirs, theirs)


def prepare(entry, x: torch.Tensor, y: torch.Tensor, amp, sync) -> dict:
    """The model on the device with AdamW; its train step, inference, FLOPs and CUDA peak memory."""
    name, model, forward = entry
    cuda = x.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if cuda else 0
    model.to(x.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def forward_backward() -> None:
        with amp():
            loss = F.cross_entropy(forward(x), y)
        loss.backward()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        optimizer.step()
        sync()

    step()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else None
    flops = count_flops(forward_backward)
    model.zero_grad(set_to_none=True)
    return {"name": name, "model": model, "forward": forward, "step": step, "flops": flops, "peak_mb": peak}


def inference(entry: dict, x: torch.Tensor, amp, sync) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad(), amp():
            entry["forward"](x)
        sync()
    return run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast dtype (default: fp32)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    parser.add_argument("--infer-batch", type=int, default=32, help="ViT inference batch (default 32)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="micro configurations, 64x64, batch 2: a CPU smoke test")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.infer_batch = 64, 2, 4
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    amp = (lambda: torch.autocast(device.type, dtype, enabled=dtype is not None))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rate = matrix_rate(device, dtype or torch.float32)
    print(f"{device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), {args.amp or 'fp32'}, "
          f"torch {torch.__version__}; matrix product {rate / 1e12:.2f} TFLOP/s; "
          f"medians of {args.rounds} alternated rounds, ratio = median of in-round ratios (vidpeft / peer)")
    out = {"device": str(device), "amp": args.amp, "torch": torch.__version__, "matrix_flops": rate,
           "rounds": args.rounds, "pairs": []}
    generator = torch.Generator().manual_seed(0)
    for kind, make, frames in (("vit", vit_pair, 16), ("swin", swin_pair, 8)):
        torch.manual_seed(0)
        x = torch.randn(args.batch, 3, frames, args.size, args.size, generator=generator).to(device)
        y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
        entries = [prepare(e, x, y, amp, sync) for e in make(args.quick, frames, args.size)]
        steps = alternated_all([e["step"] for e in entries], args.rounds)
        pair = {"kind": kind, "input": list(x.shape), "step_ratio": median_ratio(*steps), "models": []}
        for e, times in zip(entries, steps):
            median = statistics.median(t["median_s"] for t in times)
            pair["models"].append({"name": e["name"], "step_s": median, "flops": e["flops"], "peak_mb": e["peak_mb"],
                                   "mfu": e["flops"] / median / rate})
        if kind == "vit":
            xi = torch.randn(args.infer_batch, 3, frames, args.size, args.size, generator=generator).to(device)
            for e in entries:
                e["model"].eval()
            infers = alternated_all([inference(e, xi, amp, sync) for e in entries], args.rounds)
            pair["infer_ratio"] = median_ratio(*infers)
            for m, times in zip(pair["models"], infers):
                m["clips_per_s"] = args.infer_batch / statistics.median(t["median_s"] for t in times)
        ours, theirs = pair["models"]
        memory = (f", peak memory {ours['peak_mb'] / theirs['peak_mb']:.2f}× ({ours['peak_mb']:.0f} / "
                  f"{theirs['peak_mb']:.0f} MiB)" if ours["peak_mb"] else "")
        print(f"{kind} step {tuple(x.shape)}: {ours['name']} {ours['step_s'] * 1e3:.1f} ms (MFU {ours['mfu']:.1%}) vs "
              f"{theirs['name']} {theirs['step_s'] * 1e3:.1f} ms (MFU {theirs['mfu']:.1%}): {pair['step_ratio']:.2f}×{memory}")
        if "infer_ratio" in pair:
            print(f"vit inference, batch {args.infer_batch}, no_grad: {ours['clips_per_s']:.1f} vs "
                  f"{theirs['clips_per_s']:.1f} clips/s: {pair['infer_ratio']:.2f}× time")
        out["pairs"].append(pair)
        del entries, steps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
