"""One benchmark case in this process: `python -m vidpeft.bench.worker --json '{...}'`.

Prints one JSON line: parameters, resident memory after building the model and at its peak,
bytes autograd saved for backward (and how many of them were saved below the first module
holding a trainable tensor), median training-step and inference times, the adapter
checkpoint's size, and for LoRA the merged model's inference time against the plain backbone;
the transformers+peft case also times our model's step against its own, alternated here.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .flops import count_flops
from .measure import current_rss_mb, peak_rss_mb, timed

HF_PEFT = "transformers+peft"
HF_PEFT_FAMILY = "videomae"  # the backbone family transformers' VideoMAE reproduces


@dataclass
class Case:
    """What to measure; `impl` is "vidpeft" or "transformers+peft" (VideoMAE + peft's equivalent method)."""

    backbone: str
    method: str
    frames: int
    size: int = 224
    batch: int = 1
    impl: str = "vidpeft"
    options: dict = field(default_factory=dict)
    num_classes: int = 174
    grad_checkpointing: bool = False
    warmup: int = 0  # untimed training steps after the first one (which always runs untimed)
    repeats: int = 3
    device: str = "cpu"
    amp: str | None = None  # "bf16" or "fp16": autocast around forward and loss (None: fp32)


@dataclass
class Built:
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    trainable: int  # excluding the head
    # modules holding a trainable tensor of their own: the first of them to run ends the part
    # of the forward whose activations nothing trainable needs (empty: not measured)
    trainable_owners: list[nn.Module]
    save: Callable[[str], str]  # writes the adapter checkpoint into a directory, returns the file


def build_vidpeft(case: Case) -> Built:
    from vidpeft.model import ADAPTER_WEIGHTS, build_model, count_parameters, save_adapter

    model = build_model(case.backbone, case.method, case.num_classes, seed=0, **case.options)
    model.set_grad_checkpointing(case.grad_checkpointing)
    owners = [m for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]

    def save(directory: str) -> str:
        save_adapter(model, directory)
        return os.path.join(directory, ADAPTER_WEIGHTS)

    return Built(model, model, count_parameters(model)["trainable"], owners, save)


def build_hf_peft(case: Case) -> Built:
    """transformers' VideoMAEForVideoClassification (random weights, SDPA), sized like the vidpeft
    backbone of the case, with peft's equivalent of the case's method (PEFT_EQUIVALENTS)."""
    from peft import get_peft_model
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    from vidpeft.backbones import build_backbone

    with torch.device("meta"):  # only its sizes
        ours = build_backbone(case.backbone, case.num_classes)
    block = ours.blocks[0]
    config = VideoMAEConfig(num_frames=case.frames, image_size=case.size, num_labels=case.num_classes,
                            hidden_size=ours.num_features, num_hidden_layers=len(ours.blocks),
                            num_attention_heads=block.attn.num_heads, intermediate_size=block.mlp.fc1.out_features,
                            attn_implementation="sdpa")
    torch.manual_seed(0)
    model = get_peft_model(VideoMAEForVideoClassification(config), PEFT_EQUIVALENTS[case.method](case.options))
    if case.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    head = {id(p) for n, p in model.named_parameters() if "classifier" in n}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in head)

    def save(directory: str) -> str:
        model.save_pretrained(directory)
        return os.path.join(directory, "adapter_model.safetensors")

    return Built(model, lambda x: model(pixel_values=x.transpose(1, 2)).logits, trainable, [], save)


def peft_lora(options: dict):
    """peft LoRA on query and value (our targets), with the same rank, alpha and dropout."""
    from peft import LoraConfig

    from vidpeft.methods.lora import LoRAConfig

    ours = LoRAConfig(**options)
    return LoraConfig(r=ours.rank, lora_alpha=ours.alpha, lora_dropout=ours.dropout, modules_to_save=["classifier"],
                      target_modules=[{"q": "query", "k": "key", "v": "value"}[t] for t in ours.targets])


def peft_dora(options: dict):
    """peft DoRA (LoRA with use_dora) on transformers' modules for our targets, same rank, alpha and dropout."""
    from peft import LoraConfig

    from vidpeft.methods.dora import DoRAConfig

    ours = DoRAConfig(**options)
    names = {"q": [r"attention\.attention\.query"], "k": [r"attention\.attention\.key"],
             "v": [r"attention\.attention\.value"], "proj": [r"attention\.output\.dense"],
             "mlp": [r"intermediate\.dense", r"output\.dense"]}
    modules = "|".join(name for t in ours.targets for name in names[t])
    return LoraConfig(r=ours.rank, lora_alpha=ours.alpha, lora_dropout=ours.dropout, use_dora=True,
                      modules_to_save=["classifier"], target_modules=rf".*encoder\.layer\.\d+\.({modules})")


def peft_ln_tuning(options: dict):
    """peft LN tuning of every LayerNorm of transformers' VideoMAE: our NormTuning."""
    from peft import LNTuningConfig

    from vidpeft.methods.norm import NormConfig

    NormConfig(**options)  # it has no options: an unknown one is refused as in our method
    return LNTuningConfig(target_modules=["layernorm_before", "layernorm_after", "fc_norm"],
                          modules_to_save=["classifier"])


# our methods with an equivalent in peft that runs on transformers' VideoMAE: its config from our options
PEFT_EQUIVALENTS: dict[str, Callable[[dict], object]] = {"lora": peft_lora, "dora": peft_dora, "norm": peft_ln_tuning}


class SavedTensors:
    """Counts the bytes autograd saves for backward (parameters excluded, storages counted once),
    and the part saved before the first of `owners` runs: activations nothing trainable needs."""

    def __init__(self, model: nn.Module, owners: list[nn.Module]) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.total = self.below = 0
        self.reached = not owners
        self.handles = [m.register_forward_pre_hook(self._reach) for m in owners]

    def _reach(self, *_) -> None:
        self.reached = True

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.params and ptr not in self.seen:
            self.seen.add(ptr)
            self.total += storage.nbytes()
            if not self.reached:
                self.below += storage.nbytes()
        return t

    def close(self) -> dict[str, float]:
        for handle in self.handles:
            handle.remove()
        return {"saved_mb": self.total / 2**20, "saved_below_mb": self.below / 2**20}


@dataclass
class Prepared:
    """A case built on its device, its first step taken: `result` holds what does not need timing."""

    case: Case
    built: Built
    step: Callable[[], None]
    infer: Callable[[], None]
    x: torch.Tensor
    y: torch.Tensor
    sync: Callable[[], None]
    result: dict


def prepare(case: Case) -> Prepared:
    """Build the case, take its first (untimed) step counting what autograd saves, count a step's
    FLOPs, save the adapter. Memory: on CUDA the allocations this case added (peak of its first
    step over what was allocated before it was built), on CPU the process's resident set."""
    device = torch.device(case.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    cuda_base = torch.cuda.memory_allocated() / 2**20 if cuda else 0.0
    rss_start = current_rss_mb()
    built = build_hf_peft(case) if case.impl == HF_PEFT else build_vidpeft(case)
    model = built.model.to(device).train()
    trainable_tensors = [p for p in model.parameters() if p.requires_grad]
    optimizer = hf_optimizer(model) if case.impl == HF_PEFT else our_optimizer(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(case.batch, 3, case.frames, case.size, case.size, generator=generator).to(device)
    y = torch.randint(0, case.num_classes, (case.batch,), generator=generator).to(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rss_built = current_rss_mb()
    cuda_built = torch.cuda.memory_allocated() / 2**20 - cuda_base if cuda else None
    amp = autocast(case)

    step = training_step(built, optimizer, x, y, amp, sync)
    saved = SavedTensors(model, built.trainable_owners)
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        step()  # the first step also creates the optimiser state
    peak = torch.cuda.max_memory_allocated() / 2**20 - cuda_base if cuda else None
    flops = count_flops(forward_backward(built, x, y, amp))

    def infer() -> None:
        with torch.no_grad(), amp:
            built.forward(x)
        sync()

    with tempfile.TemporaryDirectory() as tmp:
        adapter_bytes = os.path.getsize(built.save(tmp))
    result = {
        "case": case.__dict__, "threads": torch.get_num_threads(),
        "trainable": built.trainable, "trainable_with_head": sum(p.numel() for p in trainable_tensors),
        "optimizer_params": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
        "optimizer_state": sum(t.numel() for s in optimizer.state.values() for t in s.values()
                               if torch.is_tensor(t) and t.ndim > 0),
        "rss_start_mb": rss_start, "built_mb": cuda_built if cuda else rss_built, "peak_mb": peak,
        "memory": "cuda_max_allocated" if cuda else "max_rss",
        **saved.close(), "flops": flops, "adapter_bytes": adapter_bytes,
    }
    return Prepared(case, built, step, infer, x, y, sync, result)


def measure(case: Case) -> dict:
    """One case alone in this process."""
    prepared = prepare(case)
    result, model = prepared.result, prepared.built.model
    result["step"] = timed(prepared.step, case.warmup, case.repeats)
    result["peak_mb"] = peak_rss_mb() if result["peak_mb"] is None else torch.cuda.max_memory_allocated() / 2**20
    model.eval()
    result["infer"] = timed(prepared.infer, 1, case.repeats)
    if case.impl != HF_PEFT and case.method == "lora":
        result["merge"] = merged_vs_plain(case, model, prepared.x)
    if case.impl == HF_PEFT:
        model.train()
        result["paired"] = paired_with_ours(case, prepared.step, prepared.x, prepared.y, prepared.sync)
    return result


def measure_together(cases: list[Case]) -> list[dict]:
    """Every case in this one process, a backbone at a time: all its cases built and resident, then
    their training steps alternated round by round (the order reversed every round), then their
    inference the same way (the first round untimed); each case's per-round times go in `rounds`, so a ratio between two
    cases is the median of in-round ratios (report.add_ratios). The transformers+peft cases get
    their `paired` comparison from the same rounds. Memory is per case on CUDA (what it added), not
    measured on CPU (one process: its resident set is every case's)."""
    results: list[dict] = []
    for backbone in dict.fromkeys(c.backbone for c in cases):
        group = []
        for case in (c for c in cases if c.backbone == backbone):
            try:
                group.append(prepare(case))
                for _ in range(case.warmup):
                    group[-1].step()
            except Exception as error:  # noqa: BLE001 - recorded; the other cases still run
                results.append({"case": case.__dict__, "error": f"{type(error).__name__}: {error}".splitlines()[0]})
        if not group:
            continue
        repeats = group[0].case.repeats
        steps = alternated_all([p.step for p in group], repeats)
        for p in group:
            p.built.model.eval()
        infers = alternated_all([p.infer for p in group], repeats)
        for p, step_times, infer_times in zip(group, steps, infers):
            p.result.update(step=summary(step_times), infer=summary(infer_times),
                            rounds={"step": [t["median_s"] for t in step_times],
                                    "step_cpu": [t["cpu_s"] for t in step_times],
                                    "infer": [t["median_s"] for t in infer_times]})
        for p, step_times in zip(group, steps):
            if p.result["memory"] == "max_rss":  # the process's, not the case's
                p.result.update(built_mb=None, peak_mb=None)
            ours = next((i for i, q in enumerate(group) if q.case == replace(p.case, impl="vidpeft")), None)
            if p.case.impl == HF_PEFT and ours is not None:
                p.result["paired"] = paired(steps[ours], step_times)
        results += [p.result for p in group]
        del group, steps, infers
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return results


def summary(times: list[dict]) -> dict[str, float]:
    return {"median_s": statistics.median(t["median_s"] for t in times), "min_s": min(t["min_s"] for t in times),
            "cpu_s": statistics.median(t["cpu_s"] for t in times)}


def forward_backward(built: Built, x: torch.Tensor, y: torch.Tensor,
                     amp: contextlib.AbstractContextManager) -> Callable[[], None]:
    """A training step's forward and backward (what its FLOPs are counted on), gradients dropped after."""
    def run() -> None:
        with amp:
            loss = F.cross_entropy(built.forward(x), y)
        loss.backward()
        built.model.zero_grad(set_to_none=True)

    return run


def hf_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.05)


def our_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The engine's own AdamW (with its no-decay groups), so the benchmark checks what training uses."""
    from vidpeft.config.train import TrainConfig
    from vidpeft.engine.optim import build_optimizer

    return build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05), lr=1e-4)


def autocast(case: Case) -> contextlib.AbstractContextManager:
    """The autocast context of `case.amp` (None: fp32), built as vidpeft-train builds it."""
    from vidpeft.engine.precision import autocast as training_autocast

    return training_autocast(torch.device(case.device), case.amp)[0]


def training_step(built: Built, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  amp: contextlib.AbstractContextManager, sync: Callable[[], None]) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss = F.cross_entropy(built.forward(x), y)
        loss.backward()
        optimizer.step()
        sync()

    return step


def alternated(first: Callable[[], None], second: Callable[[], None], rounds: int) -> tuple[list[dict], list[dict]]:
    """`timed` runs of two functions in 1 + `rounds` rounds, the order swapping every round; the
    first round (untimed) warms both up. Each list holds one {median_s, min_s, cpu_s} per round."""
    first_times, second_times = alternated_all([first, second], rounds)
    return first_times, second_times


def alternated_all(fns: list[Callable[[], None]], rounds: int) -> list[list[dict]]:
    """`alternated` for any number of functions: the order reverses every round."""
    times: list[list[dict]] = [[] for _ in fns]
    for i in range(1 + rounds):
        order = list(zip(fns, times))
        for fn, out in order[::-1] if i % 2 else order:
            t = timed(fn, 0, 1)
            if i:
                out.append(t)
    return times


def median_ratio(first: list[dict], second: list[dict]) -> float:
    """The median of the in-round ratios of two functions' `alternated_all` times (median_s)."""
    return statistics.median(a["median_s"] / b["median_s"] for a, b in zip(first, second))


def paired_with_ours(case: Case, theirs: Callable[[], None], x: torch.Tensor, y: torch.Tensor,
                     sync: Callable[[], None]) -> dict:
    """Our model's training step against transformers+peft's (`theirs`, already warm), built in
    this process and alternated round by round. The median of the in-round ratios follows neither
    process's own luck nor a drift in the machine's load, which separate processes do."""
    ours = build_vidpeft(replace(case, impl="vidpeft"))
    optimizer = our_optimizer(ours.model.to(x.device).train())
    return paired(*alternated(training_step(ours, optimizer, x, y, autocast(case), sync), theirs, case.repeats))


def paired(our_times: list[dict], their_times: list[dict]) -> dict:
    """Our step against transformers+peft's from alternated rounds: medians of the in-round ratios."""
    ratios = [{k: a[k] / b[k] for k in ("median_s", "cpu_s")} for a, b in zip(our_times, their_times)]
    return {"rounds": len(ratios), "vidpeft": our_times, HF_PEFT: their_times,
            "step": statistics.median(r["median_s"] for r in ratios),
            "step_cpu": statistics.median(r["cpu_s"] for r in ratios)}


def merged_vs_plain(case: Case, model: nn.Module, x: torch.Tensor) -> dict:
    """Inference of the LoRA model merged (vidpeft.merge_lora) against the plain backbone,
    alternated in this process so both see the same load."""
    from vidpeft.methods import merge_lora
    from vidpeft.model import build_model

    with torch.no_grad():
        before = model(x)
        merge_lora(model)
        after = model(x)
    plain = build_model(case.backbone, "linear", case.num_classes, seed=0).to(x.device).eval()
    merged_t, plain_t = alternated(lambda: _no_grad(model, x), lambda: _no_grad(plain, x), case.repeats)
    return {"merged_s": statistics.median(t["median_s"] for t in merged_t),
            "plain_s": statistics.median(t["median_s"] for t in plain_t),
            "max_abs_diff": (before - after).abs().max().item()}


def _no_grad(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)
    if x.is_cuda:
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, help="the Case as a JSON object, or a list of them to measure "
                        "together in this process (measure_together): prints a JSON list")
    spec = json.loads(parser.parse_args(argv).json)
    if isinstance(spec, list):
        print(json.dumps(measure_together([Case(**c) for c in spec])))
    else:
        print(json.dumps(measure(Case(**spec))))


if __name__ == "__main__":
    main()
