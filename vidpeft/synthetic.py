"""Small raw datasets in the SSv2, Kinetics-400 and HMDB51 layouts, made of real encoded videos.

Each class is a motion of a textured object over a textured, noisy background: moving
right, left, up or down, rotating clockwise or counter-clockwise, approaching or receding.
Object shape, colours, texture, start position and speed are random per video, so only the
motion tells the classes apart. Class names are real names from each dataset's label map.

    make_dataset("k400", root, classes=4, per_class=6, size=(160, 120), frames=24)

SSv2 videos are VP9 webm (427x240, 12 fps by default), K400 H.264 mp4 with an AAC audio
track (640x360, 30 fps), HMDB51 MPEG-4 avi (320x240, 30 fps).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from .labels import label_map

MOTIONS = ("right", "left", "up", "down", "rotate_cw", "rotate_ccw", "approach", "recede")
CLASS_NAMES = {
    "ssv2": ("Pushing something from left to right", "Pushing something from right to left",
             "Moving something up", "Moving something down",
             "Spinning something so it continues spinning",
             "Spinning something that quickly stops spinning",
             "Moving something towards the camera", "Moving something away from the camera"),
    "k400": ("passing American football (in game)", "massaging person's head",
             "tying knot (not on a tie)", "petting animal (not cat)", "spinning poi",
             "juggling balls", "using remote controller (not gaming)", "punching person (boxing)"),
    "hmdb51": ("walk", "run", "climb", "fall_floor", "cartwheel", "somersault", "kick_ball",
               "throw"),
}
FORMATS = {  # container, codec, default size, default fps, codec options
    "ssv2": ("webm", "libvpx-vp9", (427, 240), 12,
             {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0"}),
    "k400": ("mp4", "libx264", (640, 360), 30, {"preset": "ultrafast", "crf": "20"}),
    "hmdb51": ("avi", "mpeg4", (320, 240), 30, {"b": "1500k"}),
}
WILD = ("-{i} lead dash", "#{i}_Cleaning Up (Rad)", "!{i} Schlag&die Bank", "{i}'s (take) #2&!")


@dataclass(frozen=True)
class SyntheticVideo:
    path: Path  # the raw file written
    class_name: str
    label: int  # id in the dataset's label map
    split: str  # "train", "val" or "test" (HMDB51: the role in split 1)


# ---------------------------------------------------------------- rendering

def _texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Blocky colour noise plus fine grain: something a network can track, not a flat colour."""
    coarse = rng.integers(0, 256, (h // cell + 1, w // cell + 1, 3), dtype=np.uint8)
    img = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:h, :w].astype(np.int16)
    img += rng.integers(-24, 25, (h, w, 3), dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _trajectory(motion: str, rng: np.random.Generator, t: np.ndarray, w: int, h: int):
    """Centre x, y, angle (radians) and scale for each time t in [0, 1]."""
    a, b = rng.uniform(0.15, 0.3), rng.uniform(0.7, 0.85)  # start / end fraction
    fixed_x, fixed_y = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    x, y = np.full_like(t, fixed_x), np.full_like(t, fixed_y)
    angle, scale = np.full_like(t, rng.uniform(0, 2 * np.pi)), np.ones_like(t)
    go = a + (b - a) * t  # a -> b
    if motion in ("right", "left"):
        x = (go if motion == "right" else 1 - go) * w
    elif motion in ("up", "down"):
        y = (go if motion == "down" else 1 - go) * h
    elif motion.startswith("rotate"):
        turn = rng.uniform(1.0, 2.0) * np.pi * t
        angle = angle + (turn if motion == "rotate_cw" else -turn)  # y points down
    else:
        small, big = rng.uniform(0.45, 0.6), rng.uniform(1.4, 1.7)
        scale = small + (big - small) * (t if motion == "approach" else 1 - t)
    return x, y, angle, scale


def _paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray,
           cx: float, cy: float, angle: float, scale: float) -> None:
    """Draw `patch` (where `mask`) rotated by `angle`, scaled, centred at (cx, cy)."""
    h, w = frame.shape[:2]
    s = patch.shape[0]
    r = int(np.ceil(s * scale * 0.75)) + 1
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r)
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r)
    if x0 >= x1 or y0 >= y1:
        return
    dx = ((np.arange(x0, x1, dtype=np.float32) - cx) / scale)[None, :]
    dy = ((np.arange(y0, y1, dtype=np.float32) - cy) / scale)[:, None]
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (cos * dx + sin * dy + s / 2).astype(np.int32)
    v = (cos * dy - sin * dx + s / 2).astype(np.int32)
    inside = (u >= 0) & (u < s) & (v >= 0) & (v < s)
    inside[inside] = mask[v[inside], u[inside]]
    frame[y0:y1, x0:x1][inside] = patch[v[inside], u[inside]]


def render(motion: str, rng: np.random.Generator, size: tuple[int, int],
           frames: int, plain: bool = False) -> Iterator[np.ndarray]:
    """`frames` (H, W, 3) uint8 frames of one object doing `motion`, one at a time.

    plain: a flat grey object on a flat background, so that only the motion tells classes
    apart (a small network trained on a few hundred videos then learns motion instead of
    memorising textures); rotations are invisible in that style."""
    w, h = size
    # a low-contrast background and a high-contrast, dark-rimmed object
    background = _texture(rng, h, w, cell=int(rng.integers(4, 12))) // 2 + 64
    s = max(8, int(min(w, h) * rng.uniform(0.25, 0.4)))
    patch = _texture(rng, s, s, cell=max(2, s // int(rng.integers(3, 7))))
    if plain:
        background[:] = rng.integers(70, 110)
        patch[:] = rng.integers(200, 250)
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    radius = np.hypot(xx, yy) if rng.random() < 0.5 else np.maximum(abs(xx), abs(yy))
    mask = radius <= s / 2
    patch[radius > s / 2 - max(1, s // 12)] = 0
    # per-frame sensor noise on the background, cycled from a few precomputed variants
    noisy = [(background + rng.integers(-10, 11, (h, w, 3), dtype=np.int16)).astype(np.uint8)
             for _ in range(4)]
    x, y, angle, scale = _trajectory(motion, rng, np.linspace(0, 1, frames), w, h)
    for i in range(frames):
        frame = noisy[i % len(noisy)].copy()
        _paste(frame, patch, mask, x[i], y[i], angle[i], scale[i])
        yield frame


def encode(frames: Iterable[np.ndarray], path: Path, layout: str, fps: float | None = None,
           audio: bool = False) -> Path:
    """Write (H, W, 3) uint8 frames in the layout's raw format (see FORMATS)."""
    container, codec, _, default_fps, options = FORMATS[layout]
    rate = Fraction(fps or default_fps).limit_denominator(1001)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, options=dict(options))
        sound = out.add_stream("aac", rate=16000) if audio else None
        to_yuv = VideoReformatter()  # one swscale context for the whole video
        count = 0
        for count, rgb in enumerate(frames, 1):
            if count == 1:
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
            frame = to_yuv.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"),
                                    format="yuv420p")
            frame.pts = count - 1
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            _add_audio(out, sound, seconds=count / rate)
    return path


def _add_audio(out, stream, seconds: float) -> None:
    samples = int(seconds * stream.rate)
    tone = (0.1 * np.sin(np.arange(samples) * 2 * np.pi * 440 / stream.rate)).astype(np.float32)
    for start in range(0, samples, 1024):
        chunk = tone[None, start:start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


# ---------------------------------------------------------------- layouts

def _split_of(i: int, n: int, parts: tuple[str, ...]) -> str:
    """Spread n videos of a class over `parts`: ~70% to the first, the rest round-robin."""
    n_first = max(1, min(n - (len(parts) - 1), round(n * 0.7)))
    return parts[0] if i < n_first else parts[1 + (i - n_first) % (len(parts) - 1)]


def _name(layout: str, i: int, rng: np.random.Generator, wild: bool) -> str:
    if wild:
        return WILD[(i + i // len(WILD)) % len(WILD)].format(i=i)
    if layout == "ssv2":
        return str(1000 + i)
    if layout == "k400":
        chars = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"))
        return "".join(rng.choice(chars, 11))
    return f"Clip{i}_f_cm_np1_ri_med_{i % 3}"


def make_dataset(layout: str, root: Path, *, classes: int = 4, per_class: int = 4,
                 size: tuple[int, int] | None = None, frames: int = 24,
                 fps: float | None = None, seed: int = 0, wild_names: bool = False,
                 ssv2_long_names: bool = False, k400_flat: bool = False,
                 k400_val_name: str = "validate", motions: Sequence[str] | None = None,
                 plain: bool = False) -> list[SyntheticVideo]:
    """Write a raw `layout` ('ssv2' | 'k400' | 'hmdb51') dataset under `root`.

    `classes` motions (at most 8; or the named `motions`) x `per_class` videos of `frames`
    frames at `size` (W, H); `plain`: flat object and background (see `render`).
    wild_names: file names with spaces, a leading '-', '#', '!', '(', ')', '&' and "'".
    ssv2_long_names: something-something-v2-*.json instead of labels.json etc.
    k400_flat: no class folders; k400_val_name: 'validate' or 'val' (the CSV's name).
    """
    if layout not in FORMATS:
        raise KeyError(f"unknown layout {layout!r}: choose one of {', '.join(FORMATS)}")
    motions = tuple(motions) if motions is not None else MOTIONS[:classes]
    unknown = [m for m in motions if m not in MOTIONS]
    if unknown or not 1 <= len(motions) <= len(MOTIONS):
        raise ValueError(f"choose 1..{len(MOTIONS)} motions among {', '.join(MOTIONS)}; got {motions}")
    names = label_map(layout)
    size = size or FORMATS[layout][2]
    rng = np.random.default_rng(seed)
    parts = ("train", "test") if layout == "hmdb51" else ("train", "val", "test")
    if layout == "ssv2":
        parts = ("train", "val")
    videos = []
    for c, motion in enumerate(motions):
        class_name = CLASS_NAMES[layout][MOTIONS.index(motion)]
        for k in range(per_class):
            i = c * per_class + k
            stem = _name(layout, i, rng, wild_names)
            split = _split_of(k, per_class, parts)
            path = root / _raw_path(layout, stem, class_name, split, k400_flat, rng)
            path.parent.mkdir(parents=True, exist_ok=True)
            clip = render(motion, np.random.default_rng([seed, i]), size, frames, plain)
            encode(clip, path, layout, fps, audio=layout == "k400")
            videos.append(SyntheticVideo(path, class_name, names.index(class_name), split))
    writers = {"ssv2": _ssv2_labels, "k400": _k400_csvs, "hmdb51": _hmdb51_splits}
    writers[layout](root, videos, rng, ssv2_long_names=ssv2_long_names,
                    k400_val_name=k400_val_name)
    return videos


def _raw_path(layout: str, stem: str, class_name: str, split: str, flat: bool,
              rng: np.random.Generator) -> str:
    if layout == "ssv2":
        return f"20bn-something-something-v2/{stem}.webm"
    if layout == "k400":
        start = int(rng.integers(0, 300))
        name = f"{stem}_{start:06d}_{start + 10:06d}.mp4"
        return f"{split}/{name}" if flat else f"{split}/{class_name}/{name}"
    return f"hmdb51_org/{class_name}/{stem}_{class_name}.avi"


def _ssv2_labels(root: Path, videos: list[SyntheticVideo], rng, *, ssv2_long_names: bool,
                 **_) -> None:
    prefix = "something-something-v2-" if ssv2_long_names else ""
    folder = root / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    templates = label_map("ssv2")
    (folder / f"{prefix}labels.json").write_text(
        json.dumps({t: str(i) for i, t in enumerate(templates)}, indent=1))
    for part, file_part in (("train", "train"), ("val", "validation")):
        entries = [{"id": v.path.stem, "label": v.class_name.lower(),
                    "template": v.class_name.replace("something", "[something]"),
                    "placeholders": ["something"]} for v in videos if v.split == part]
        (folder / f"{prefix}{file_part}.json").write_text(json.dumps(entries, indent=1))
    (folder / f"{prefix}test.json").write_text("[]")


def _k400_csvs(root: Path, videos: list[SyntheticVideo], rng, *, k400_val_name: str,
               **_) -> None:
    folder = root / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    for part, file_name in (("train", "train"), ("val", k400_val_name), ("test", "test")):
        with (folder / f"{file_name}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for v in videos:
                if v.split == part:
                    ytid, start, end = v.path.stem.rsplit("_", 2)
                    writer.writerow([v.class_name, ytid, int(start), int(end),
                                     "validate" if part == "val" else part])


def _hmdb51_splits(root: Path, videos: list[SyntheticVideo], rng, **_) -> None:
    """Three 70/30 splits per class; split 1 follows each video's `split`."""
    folder = root / "testTrainMulti_7030_splits"
    folder.mkdir(parents=True, exist_ok=True)
    for class_name in dict.fromkeys(v.class_name for v in videos):
        mine = [v for v in videos if v.class_name == class_name]
        for k in (1, 2, 3):
            order = range(len(mine)) if k == 1 else rng.permutation(len(mine))
            tags = {mine[j].path.name: "1" if _split_of(pos, len(mine), ("train", "test")) ==
                    "train" else "2" for pos, j in enumerate(order)}
            lines = "".join(f"{name} {tags[name]} \n" for name in sorted(tags))
            (folder / f"{class_name}_test_split{k}.txt").write_text(lines)
