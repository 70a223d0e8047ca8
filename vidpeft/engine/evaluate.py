"""Multi-view scoring: per-view softmax averaged per video; every video scored exactly once."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..data.config import resolve_num_workers
from ..data.dataset import VideoDataset, worker_init
from ..fileio import write_atomic
from . import distributed as dist


@torch.no_grad()
def video_probabilities(model, views: torch.Tensor, device, amp_context, views_per_batch: int) -> torch.Tensor:
    """Mean softmax over the (V, 3, T, H, W) views of one video."""
    probs = []
    for chunk in views.split(max(1, views_per_batch)):
        with amp_context:
            logits = model(chunk.to(device, non_blocking=True))
        probs.append(logits.float().softmax(-1).cpu())
    return torch.cat(probs).mean(0)


@torch.no_grad()
def evaluate(model, dataset, device, amp_context, views_per_batch: int = 8, num_workers: int | None = 0,
             show_progress: bool = True) -> dict:
    """top1/top5/mean class accuracy (in %) over the readable videos; unreadable ones listed by path.

    Ranks take disjoint strided shares of the list (no padding, so no video counts twice) and the
    results are gathered, so every rank returns the same numbers.
    """
    from tqdm import tqdm

    model.eval()
    share = list(range(dist.rank(), len(dataset), dist.world_size()))
    num_workers = resolve_num_workers(num_workers, dataset.cfg.decoder)  # None: auto
    loader = DataLoader(torch.utils.data.Subset(dataset, share), batch_size=None, shuffle=False,
                        num_workers=num_workers, worker_init_fn=worker_init if num_workers else None)
    scored, unreadable = [], []
    for views, label, index in tqdm(loader, desc="scoring", leave=False, dynamic_ncols=True,
                                    disable=None if show_progress and dist.is_main() else True):
        if views is None:
            unreadable.append((index, str(dataset.samples[index].path)))
            continue
        scored.append((index, label, video_probabilities(model, views, device, amp_context, views_per_batch)))
    parts = dist.gather((scored, unreadable))
    everything = sorted((row for rows, _ in parts for row in rows), key=lambda row: row[0])
    unreadable = sorted(u for _, failed in parts for u in failed)
    result = metrics(everything)
    result.update(unreadable=[path for _, path in unreadable], views=dataset.cfg.views())
    return result


def metrics(rows: list[tuple[int, int, torch.Tensor]]) -> dict:
    if not rows:
        return {"top1": 0.0, "top5": 0.0, "mean_class_accuracy": 0.0, "videos": 0}
    labels = torch.tensor([label for _, label, _ in rows])
    probs = torch.stack([p for _, _, p in rows])
    k = min(5, probs.shape[1])
    topk = probs.topk(k, dim=1).indices
    top1 = topk[:, 0] == labels
    top5 = (topk == labels[:, None]).any(1)
    per_class = [top1[labels == c].float().mean() for c in labels.unique()]
    return {
        "top1": round(100 * top1.float().mean().item(), 4),
        "top5": round(100 * top5.float().mean().item(), 4),
        "mean_class_accuracy": round(100 * torch.stack(per_class).mean().item(), 4),
        "videos": len(rows),
    }


def write_eval(path: Path, result: dict) -> None:
    write_atomic(path, json.dumps(result, indent=2) + "\n")


def multi_view_test(model, samples, data_cfg, device, amp_context, views_per_batch: int, *, checkpoint: Path,
                    selection: dict, list_file: Path, out: Path) -> dict:
    """The multi-view test of a checkpoint on a list, written to `out` (vidpeft-train's eval.json, or
    vidpeft-test's eval_LIST_CxK.json): the metrics plus what was scored (`checkpoint`, `list`: absolute
    paths) and how the checkpoint was chosen (`selection`: model_selection, selected_on_test)."""
    dataset = VideoDataset(samples, "test", data_cfg, seed=0)
    result = evaluate(model, dataset, device, amp_context, views_per_batch=views_per_batch,
                      num_workers=data_cfg.num_workers)
    result.update(checkpoint=str(Path(checkpoint).resolve()), **selection, list=str(Path(list_file).resolve()))
    if dist.is_main():
        write_eval(out, result)
    return result
