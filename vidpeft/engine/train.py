"""The training run behind vidpeft-train: set up, fit (validating, keeping the best), then the
multi-view test of the kept checkpoint."""
from __future__ import annotations

from dataclasses import replace

from ..config.run import RunConfig
from ..model import load_adapter_weights
from . import distributed as dist
from .evaluate import multi_view_test
from .resume import load_last
from .rundir import clear_run, open_tensorboard, start_log, truncate_log
from .setup import RunLists, build_loaders, build_optimisation, build_run_model, read_lists, seed_everything
from .trainer import EPOCH_START, StopSignal, Trainer


def run(cfg: RunConfig) -> dict:
    """Train as `cfg` says (written to WORK_DIR/config.yaml with what the run resolved); return eval.json.

    SIGTERM (preemption) finishes the current optimiser step, saves last.pt and raises `Preempted`."""
    with StopSignal() as stop:
        device = dist.init()
        seed_everything(cfg.train.seed)
        lists = read_lists(cfg)
        model = build_run_model(cfg, lists.labels, device)
        loaders = build_loaders(cfg, lists, device.type)
        optimisation, resolved = build_optimisation(cfg, model, loaders, len(lists.labels), device)
        cfg = replace(cfg, resolved=resolved)
        trainer = Trainer(cfg, model, optimisation, loaders, device)
        progress = start_or_resume(cfg, trainer)
        if dist.is_main():
            announce(cfg, lists, loaders.steps_per_epoch)
            trainer.writer = open_tensorboard(cfg.work_path) if cfg.tensorboard else None
        progress = trainer.fit(progress, stop)
        result = final_test(cfg, trainer, lists, progress)
        dist.shutdown()
        return result


def start_or_resume(cfg: RunConfig, trainer: Trainer) -> dict:
    """The progress to start from: last.pt's when resuming, else a fresh work dir (config.yaml, log.csv)."""
    progress = {"epoch": 0, "step": 0, "best_top1": -1.0, "best_epoch": None, **EPOCH_START}
    work_dir, last_path = cfg.work_path, trainer.last_path
    if cfg.resume and last_path.is_file():
        progress = {**EPOCH_START, **load_last(last_path, trainer.model, trainer.optimizer, trainer.scheduler,
                                               trainer.scaler)}
        if dist.is_main():
            print(f"resuming {last_path} at epoch {progress['epoch'] + 1}, batch {progress['batch']}")
            truncate_log(work_dir / "log.csv", progress["epoch"])
    elif dist.is_main():
        clear_run(work_dir)  # --overwrite, or the leftovers of a start that never finished an epoch
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg.write(work_dir / "config.yaml")
        start_log(work_dir / "log.csv")
    return progress


def announce(cfg: RunConfig, lists: RunLists, steps_per_epoch: int) -> None:
    r, train = cfg.resolved, cfg.train
    print(f"work dir: {cfg.work_dir}\neffective batch {r.effective_batch_size} = world size {r.world_size} x batch "
          f"{r.batch_size} x accumulation {r.accumulation}; lr {r.lr:.4g}; {steps_per_epoch} steps per epoch",
          flush=True)
    how = ("data.num_workers" if cfg.data.num_workers is not None else
           f"auto: decoder {cfg.data.decoder} decodes in the training process" if r.num_workers == 0 else
           "auto: CPU cores / training processes on this machine")
    print(f"loader: {r.num_workers} worker(s) per training process ({how}); augmentation "
          f"{'on the training device' if r.device_augment else 'in the loader'}"
          f"{' (data.device_augment)' if cfg.data.device_augment is not None else ' (auto: on a GPU)'}", flush=True)
    if train.warmup_epochs >= train.epochs:
        print(f"warning: {train.warmup_epochs:g} warm-up epochs with {train.epochs} epochs: the learning rate "
              "never leaves the warm-up (lower --warmup-epochs)")
    if lists.overlap:
        print(f"warning: --select-on-test: the best epoch is chosen on {cfg.lists['val']}, which shares "
              f"{lists.overlap} videos with the test list {cfg.lists['test']}")


def final_test(cfg: RunConfig, trainer: Trainer, lists: RunLists, progress: dict) -> dict:
    """Score the test list with the checkpoint in best/ (the selected epoch) -> eval.json."""
    epochs = cfg.train.epochs
    selection = (f"epoch {progress['best_epoch']} of {epochs}: best val top-1 ({progress['best_top1']:.2f}%) on "
                 f"{cfg.lists['val']}" if cfg.train.eval_every else f"last epoch ({epochs}), validation off")
    if lists.overlap:
        selection += f", which shares {lists.overlap} videos with the test list (--select-on-test)"
    best = cfg.work_path / "best"
    load_adapter_weights(trainer.model, best)
    return multi_view_test(trainer.model, lists.test, cfg.data, trainer.device, trainer.amp_context,
                           cfg.train.batch_size, checkpoint=best, list_file=cfg.list_path("test"),
                           selection={"model_selection": selection, "selected_on_test": bool(lists.overlap)},
                           out=cfg.work_path / "eval.json")
