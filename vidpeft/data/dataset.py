"""VideoDataset (decode -> sample -> transform) and its DataLoader.

Items:
- train: `(clip (3, T, S, S) float32, label, index)`, or with `pixels=True` (vidpeft-train) the
  uint8 crop, which the trainer normalises on its device with ClipNormalizer (float32 still
  when random erasing is on, since it works on normalised values); with `repeated_aug` R > 1, `(clips (R, 3, T,
  S, S), label, index)`: R augmentations of one decoded clip (VideoMAE's repeated augmentation),
  which `collate(..., repeated=True)` puts into the batch one after another
- val/test: `(views (V, 3, T, S, S) float32, label, index)` with V = clips × crops in
  clip-major order: view k·C + c is temporal clip k (in time order) through spatial crop c
  (left→right, or top→bottom for portrait videos).
A video that cannot be read gives `(None, label, index)` (a warning names it) unless
`strict=True`, which raises `VideoReadError`; `collate` drops such items and lists their
indices in `Batch.unreadable`, so nothing is ever replaced by another video.

Randomness: an item's random draws (start or segment offsets, crop, RandAugment, erasing)
come only from (seed, epoch, index), under a private torch RNG state, so the clips of a run
are the same whatever the number of workers, a resumed run sees the clips the uninterrupted
one saw, and the model's random state is neither used nor disturbed. The loader's
`EpochSampler` hands `(epoch, index)` keys to the dataset; a bare `dataset[index]` is epoch 0.
"""
from __future__ import annotations

import itertools
import logging
import signal
import sys
import traceback
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from vidpeft.data.annotations import Sample
from vidpeft.data.config import DataConfig
from vidpeft.data.decode import DEVICE_DECODERS, VideoReadError, check_decoder, open_video
from vidpeft.data.device_augment import PlannedClip, draw_plan, planned_clip
from vidpeft.data.stages import lap
from vidpeft.data.sampling import TEST_TEMPORAL, TRAIN_TEMPORAL, resized_size, spatial_crops
from vidpeft.data.transforms import MultiViewTransform, TrainTransform
from vidpeft.errors import UserError

MODES = ("train", "val", "test")
log = logging.getLogger("vidpeft.data")


class Batch(NamedTuple):
    # (B, 3, T, S, S) train, (B, V, 3, T, S, S) val/test, the PlannedClips of a device-augmented training
    # batch; None if no item was readable
    inputs: torch.Tensor | list[PlannedClip] | None
    labels: torch.Tensor  # (B,) int64
    indices: torch.Tensor  # (B,) dataset indices of the readable items
    unreadable: list[int]  # dataset indices of the items whose video could not be read


class VideoDataset(Dataset):
    def __init__(
        self, samples: Sequence[Sample], mode: str = "train", cfg: DataConfig | None = None,
        seed: int = 0, strict: bool = False, pixels: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.samples = list(samples)
        self.mode = mode
        self.cfg = cfg or DataConfig()
        self.seed = seed
        self.strict = strict
        check_decoder(self.cfg.decoder)  # a missing decoder is one error here, not one per video
        self.transform = TrainTransform(self.cfg, pixels) if mode == "train" else MultiViewTransform(self.cfg)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor | None, int, int]:
        """`key` is an index, or `(epoch, index)` as the loader's EpochSampler yields."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        sample = self.samples[index]
        item_seed = self.item_seed(epoch, index)
        try:
            frames, clips = self._decode(sample.path, item_seed)
        except VideoReadError as error:
            if self.strict:
                raise
            log.warning("%s (%s item %d left out)", error, self.mode, index)
            return None, sample.label, index
        with one_thread():
            if self.mode != "train":
                return self.transform(frames, clips=clips), sample.label, index
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(item_seed)
                if self.cfg.device_augment:  # the frames and the draws; the Trainer augments on its device
                    plans = tuple(draw_plan(self.transform, *frames.shape[1:3], len(frames))
                                  for _ in range(self.cfg.repeated_aug))
                    return planned_clip(frames, plans), sample.label, index
                if self.cfg.repeated_aug > 1:  # R augmentations of one decoded clip
                    return torch.stack([self.transform(frames) for _ in range(self.cfg.repeated_aug)]), sample.label, index
                return self.transform(frames), sample.label, index

    def item_seed(self, epoch: int, index: int) -> int:
        """The seed of all random draws of item `index` in `epoch`."""
        return int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)[0])

    def _decode(self, path, item_seed: int) -> tuple[torch.Tensor, int]:
        """The frames of an item and its number of clips. The reader is released on return,
        before the transform runs: a live decord reader keeps a thread busy (about a core).
        Frames a GPU decoder made stay on the GPU for --device-augment's training items (augmented
        there); the CPU transforms get them on the CPU."""
        reader = open_video(path, self.cfg.decoder)
        if self.mode == "train":
            frames = reader.read(self.train_indices(reader.num_frames, item_seed))
            lap("decode: rest (all of it for decord, torchcodec)")
            return (frames if self.cfg.device_augment else frames.cpu()), 1
        indices = self._test_indices(reader.num_frames)
        return reader.read(indices.reshape(-1)).cpu(), len(indices)

    def view_plan(self, index: int) -> dict:
        """What the views of val/test item `index` are made of: the frame indices of each clip
        and, per view (clip-major, as the item), the crop box [top, left, height, width] in the
        frame resized so that its short side is S. An unreadable video gives its error."""
        sample = self.samples[index]
        entry = {"path": str(sample.path), "label": sample.label}
        try:
            reader = open_video(sample.path, self.cfg.decoder)
            indices = self._test_indices(reader.num_frames)
            height, width = reader.read(indices[:1, :1].reshape(-1)).shape[1:3]
        except VideoReadError as error:
            return {**entry, "error": str(error)}
        size = self.cfg.short_side_resize
        boxes = [[top, left, size, size] for top, left in spatial_crops(height, width, size, self.cfg.test_crops)]
        return {**entry, "num_frames": reader.num_frames, "frame_size": [height, width],
                "resized": list(resized_size(height, width, size)), "clips": indices.tolist(),
                "views": [{"clip": k, "crop": c, "box": box} for k in range(len(indices)) for c, box in enumerate(boxes)]}

    def train_indices(self, num_frames: int, item_seed: int) -> np.ndarray:
        """The frame indices a training item of a `num_frames`-frame video decodes."""
        cfg, rng = self.cfg, np.random.default_rng(item_seed)
        dense, segment = TRAIN_TEMPORAL[cfg.train_temporal]
        if cfg.sampling == "dense":
            return dense(num_frames, cfg.frames, cfg.stride, rng)
        return segment(num_frames, cfg.frames, rng)

    def _test_indices(self, num_frames: int) -> np.ndarray:
        cfg = self.cfg
        dense, segment = TEST_TEMPORAL[cfg.test_temporal]
        if cfg.sampling == "dense":
            return dense(num_frames, cfg.frames, cfg.stride, cfg.test_clips)
        return segment(num_frames, cfg.frames, cfg.test_clips)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside (as loader workers do anyway). On one clip's tensors
    intra-op threads cost more than they save: with 2 threads the vpetl train transform took
    6x the CPU time on a loaded 2-core machine, competing with the model in a 0-worker run."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def collate(items: Sequence[tuple[torch.Tensor | None, int, int]], repeated: bool = False) -> Batch:
    """Stack the readable items; list the indices of the unreadable ones. `repeated`: each item
    holds R clips of one video (repeated augmentation), which become R rows of the batch."""
    readable = [item for item in items if item[0] is not None]
    planned = bool(readable) and isinstance(readable[0][0], PlannedClip)
    repeats = (len(readable[0][0].plans) if planned else readable[0][0].shape[0]) if repeated and readable else 1
    if planned:  # frames of any size, augmented on the training device (device_augment.apply_plans)
        inputs = [item[0] for item in readable]
    else:  # default_collate stacks straight into shared memory inside a loader worker (no copy on the way out)
        inputs = stack_clips([item[0] for item in readable]) if readable else None
    lap("collate")
    return Batch(
        inputs=inputs.flatten(0, 1) if inputs is not None and repeated and not planned else inputs,
        labels=torch.tensor([item[1] for item in readable], dtype=torch.int64).repeat_interleave(repeats),
        indices=torch.tensor([item[2] for item in readable], dtype=torch.int64).repeat_interleave(repeats),
        unreadable=[item[2] for item in items if item[0] is None],
    )


def stack_clips(clips: list[torch.Tensor]) -> torch.Tensor:
    """default_collate of the clips; (3, T, S, S) uint8 crops that lie in memory as (T, S, S, 3)
    (TrainTransform's pixels) are stacked as they lie, one plain copy each, and the batch is the
    (B, 3, T, S, S) view of that (ClipNormalizer's float conversion makes it contiguous): making
    each crop (3, T, S, S)-contiguous first cost 0.5 ms per 8x224x224 clip on one core."""
    if clips[0].ndim == 4 and clips[0].permute(1, 2, 3, 0).is_contiguous():
        return default_collate([clip.permute(1, 2, 3, 0) for clip in clips]).permute(0, 4, 1, 2, 3)
    return default_collate(clips)


class EpochSampler(Sampler):
    """Yields `(epoch, index)` keys. The indices come from `base` (e.g. a DistributedSampler,
    whose `set_epoch` is called for it) or, without one, from range(length), shuffled from
    (seed, epoch) when `shuffle`. The epoch advances by one at each pass; `set_epoch(e)`
    sets the next one (call it when resuming), `set_epoch(e, start=k)` also skips its first k keys
    (resuming mid-epoch: the remaining batches are those the uninterrupted pass would have made)."""

    def __init__(self, length: int, shuffle: bool = False, seed: int = 0, base: Sampler | None = None) -> None:
        self.length, self.shuffle, self.seed, self.base = length, shuffle, seed, base
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return len(self.base) if self.base is not None else self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        start, self.start = self.start, 0
        if self.base is not None:
            if hasattr(self.base, "set_epoch"):
                self.base.set_epoch(epoch)
            indices: Iterable[int] = self.base
        elif self.shuffle:
            indices = np.random.default_rng([self.seed, epoch]).permutation(self.length).tolist()
        else:
            indices = range(self.length)
        return ((epoch, int(index)) for index in itertools.islice(indices, start, None))


def build_loader(
    dataset: VideoDataset, batch_size: int, shuffle: bool = False, num_workers: int = 0,
    sampler: Sampler | None = None, seed: int = 0, drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader yielding `Batch`es. `sampler` (e.g. DistributedSampler, which then does
    the shuffling) replaces the default order; `loader.sampler.set_epoch(e)` picks the epoch."""
    if num_workers and dataset.cfg.decoder in DEVICE_DECODERS:
        raise UserError(f"num_workers {num_workers}: decoder {dataset.cfg.decoder!r} decodes on the GPU in the "
                        "training process, where loader workers cannot; use 0")
    repeated = dataset.mode == "train" and dataset.cfg.repeated_aug > 1
    return DataLoader(
        dataset, batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle, seed, base=sampler),
        num_workers=num_workers, collate_fn=partial(collate, repeated=repeated), drop_last=drop_last,
        persistent_workers=num_workers > 0, pin_memory=pin_memory,
        # workers take their seeds from this generator, never from the global RNG (which training
        # seeds per step); an item's draws depend on (seed, epoch, index) only
        generator=torch.Generator().manual_seed(seed), worker_init_fn=worker_init if num_workers else None,
    )


def worker_init(_: int) -> None:
    """Loader workers leave SIGTERM and Ctrl-C to the main process, which stops the run cleanly and
    then shuts them down (a scheduler or a terminal signals the whole process group)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.excepthook = partial(quiet_when_the_main_process_left, sys.excepthook)


def quiet_when_the_main_process_left(hook, kind, error, trace) -> None:
    """A worker hands its batches' shared memory to the main process through a thread of
    multiprocessing's resource_sharer, which the main process connects to and which reports its
    errors through sys.excepthook. When Ctrl-C ends the main process during such a handshake, the
    connection breaks: expected then, and not worth a traceback under the one line that says how to
    resume. Anything else goes to `hook`."""
    frames = traceback.extract_tb(trace)
    if (issubclass(kind, (BrokenPipeError, ConnectionResetError, EOFError)) and frames
            and Path(frames[0].filename).name == "resource_sharer.py"):
        return
    hook(kind, error, trace)
