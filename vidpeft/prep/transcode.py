"""Convert one video to H.264 / yuv420p mp4 with PyAV, in-process (no shell, no subprocess).

The output is written under a hidden temporary name in the destination folder, probed
(decodable, dimensions, frame count) and only then renamed to its final name, so a final
name always holds a complete, checked video even if the process is killed mid-write.
"""
from __future__ import annotations

import io
import itertools
import os
import queue
import threading
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, TypeVar

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

T = TypeVar("T")
# x264 settings of each --encoding. "fastseek" (the default) makes a training clip cheap to
# decode: a keyframe every 64 frames (a clip never starts more than 63 frames after one),
# three non-reference B-frames between references in a fixed pattern (skipped unless wanted:
# the decoder walks only every 4th frame up to the clip) and tune=fastdecode (CAVLC, no
# deblocking or weighted prediction). Measured by benchmarks/clip_cost.py (README, table):
# 1.8-2.1x cheaper to read per clip than "x264" (x264's defaults, the encoding before), at
# 1.0-1.7x the size and the same PSNR.
ENCODINGS = {
    "fastseek": {"tune": "fastdecode",
                 "x264-params": "keyint=64:min-keyint=64:scenecut=0:bframes=3:b-pyramid=none:b-adapt=0"},
    "x264": {},
}
PART_MARK = ".part-"  # hidden temp outputs are named ".<final name>.part-<pid>"


class TranscodeError(Exception):
    """The source cannot be converted; the message says why (one line)."""


@dataclass(frozen=True)
class EncodeSettings:
    short_side: int = 320  # 0 = keep the source size (rounded to even)
    crf: int = 23
    preset: str = "veryfast"
    threads: int = 0  # decoder / encoder threads per video; 0 = FFmpeg's automatic choice
    encoding: str = "fastseek"  # a key of ENCODINGS

    def x264_options(self) -> dict[str, str]:
        return {"crf": str(self.crf), "preset": self.preset, **ENCODINGS[self.encoding]}


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    frames: int
    fps: Fraction
    audio_streams: int


def _even(x: float) -> int:
    return max(2, int(x / 2 + 0.5) * 2)


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is `short_side` (0 = keep), keeping aspect; both sides even."""
    if short_side <= 0:
        return _even(width), _even(height)
    scale = short_side / min(width, height)
    return _even(width * scale), _even(height * scale)


def temp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}{PART_MARK}{os.getpid()}")


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate).limit_denominator(1_000_000)
    raise TranscodeError("the video stream has no frame rate")


def _declared_frames(inp: av.container.InputContainer, vin) -> int:
    """Frames the header promises: the count if stored (mp4, avi), else duration x rate
    (webm stores no count); 0 if unknown. Decoding fewer means the file is damaged."""
    if vin.frames:
        return vin.frames
    if vin.duration and vin.time_base:
        seconds = float(vin.duration * vin.time_base)
    else:
        seconds = (inp.duration or 0) / av.time_base
    return round(seconds * float(_frame_rate(vin)))


def _open(source: Path | bytes) -> av.container.InputContainer:
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size == 0:
        raise TranscodeError("empty file (0 bytes); download it again")
    try:
        return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (av.FFmpegError, OSError) as e:
        raise TranscodeError(f"cannot open as a video: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    text = e.strerror if isinstance(e, av.FFmpegError) and e.strerror else str(e)
    return " ".join(text.split()) or type(e).__name__


def transcode(source: Path | bytes, dst: Path, settings: EncodeSettings) -> VideoInfo:
    """Convert `source` (a file, or the bytes of one) to `dst`; return the probed output."""
    tmp = temp_name(dst)
    try:
        with _open(source) as inp:
            if not inp.streams.video:
                raise TranscodeError("the file has no video stream")
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            vin.codec_context.thread_count = settings.threads
            declared = _declared_frames(inp, vin)
            decoded = inp.decode(vin)
            first = next(decoded, None)
            turns = round((first.rotation if first is not None else 0) / 90) % 4
            source = (vin.codec_context.width, vin.codec_context.height)
            width, height = output_size(*(source[::-1] if turns % 2 else source), settings.short_side)
            fps = _frame_rate(vin)
            frames = itertools.chain([first] if first is not None else [], decoded)
            count = _encode(upright(frames, turns), tmp, width, height, fps, settings)
        if count == 0:
            raise TranscodeError("no frame could be decoded")
        if declared and count < declared * 0.9 - 1:
            raise TranscodeError(f"truncated or damaged: decoded {count} of about {declared} "
                                 f"frames; download it again")
        info = probe(tmp, threads=settings.threads, full=False)
        expected = ("h264", "yuv420p", width, height, count, fps, 0)
        got = (info.codec, info.pix_fmt, info.width, info.height, info.frames, info.fps,
               info.audio_streams)
        if got != expected:
            raise TranscodeError(f"output check failed: expected {expected}, got {got}")
        os.replace(tmp, dst)
        return info
    except (av.FFmpegError, OSError) as e:
        raise TranscodeError(_reason(e)) from None
    finally:
        tmp.unlink(missing_ok=True)


def upright(frames: Iterator[av.VideoFrame], turns: int) -> Iterator[av.VideoFrame]:
    """Apply a display matrix's rotation (`turns` x 90 degrees counter-clockwise, as players and
    decord show the video), so a phone's portrait clip stays portrait without its metadata."""
    if not turns:
        yield from frames
        return
    for frame in frames:
        yield av.VideoFrame.from_ndarray(
            np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), k=turns)), format="rgb24")


def _encode(frames: Iterator[av.VideoFrame], tmp: Path, width: int, height: int, fps: Fraction,
            settings: EncodeSettings) -> int:
    count = 0
    # One reformatter for the whole video: it keeps its swscale context, whereas
    # frame.reformat() would build a new one for every frame (3x slower overall).
    scaler = VideoReformatter()
    scaled = (scaler.reformat(frame, width, height, format="yuv420p", interpolation="BICUBIC")
              for frame in frames)
    with av.open(str(tmp), "w", format="mp4") as out:
        vout = out.add_stream("libx264", rate=fps, options=settings.x264_options())
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        # Frame threads as the ffmpeg command line uses them (PyAV's default is slice
        # threading, and a "threads" option alone leaves x264 on one thread).
        vout.codec_context.thread_type = "FRAME"
        vout.codec_context.thread_count = settings.threads
        # PyAV releases the GIL inside FFmpeg, so decoding + scaling in a second thread
        # overlaps with encoding, like ffmpeg's own threaded pipeline.
        with closing(in_thread(scaled)) as frames:  # stops the thread before `inp` closes
            for frame in frames:
                # Renumber frames 0, 1, 2, ... at the source rate: every frame is kept.
                frame.pts, frame.time_base = count, 1 / fps
                # the source's frame types would force x264's (FFmpeg passes them on): let --encoding choose
                frame.pict_type = PictureType.NONE
                out.mux(vout.encode(frame))
                count += 1
        out.mux(vout.encode(None))
    return count


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def in_thread(items: Iterator[T], depth: int = 8) -> Iterator[T]:
    """Iterate `items` in a background thread, `depth` items ahead; errors re-raise here."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer
            put(_Raised(e))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


def probe(path: Path | str, threads: int = 0, full: bool = True) -> VideoInfo:
    """Describe the first video stream of `path`, counting its frames.

    full: decode every frame. Otherwise (the check after each conversion, ~10% of the
    conversion's CPU saved) read every packet, count one frame per packet and decode the
    key frames only; each of them must decode.
    """
    with av.open(str(path)) as c:
        if not c.streams.video:
            raise TranscodeError(f"{path}: no video stream")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.codec_context.thread_count = threads  # 0 = one per core
        if full:
            frames = sum(1 for _ in c.decode(s))
        else:
            s.codec_context.skip_frame = "NONKEY"
            frames = keys = decoded = 0
            for packet in c.demux(s):
                if packet.size:
                    frames += 1
                    keys += packet.is_keyframe
                decoded += len(packet.decode())
            if decoded != keys or not keys:
                raise TranscodeError(f"{path}: {decoded} of {keys} key frames decode")
        return VideoInfo(codec=s.codec_context.name, pix_fmt=s.codec_context.pix_fmt or "",
                         width=s.codec_context.width, height=s.codec_context.height,
                         frames=frames, fps=_frame_rate(s), audio_streams=len(c.streams.audio))
