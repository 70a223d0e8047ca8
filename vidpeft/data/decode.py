"""One interface over four decoders: PyAV (the default: the fastest in
benchmarks/data_speed.py, wheels everywhere, every codec FFmpeg has), decord, TorchCodec
(PyTorch's decoder; an optional extra that needs FFmpeg's shared libraries) and NVDEC (NVIDIA's
hardware decoder through PyNvVideoCodec; an optional extra that needs an NVIDIA GPU).

`open_video(path, decoder)` returns a reader with `num_frames`, `fps` and
`read(indices) -> uint8 tensor (T, H, W, 3)`; frames are numbered in presentation order
from 0, the same way by every decoder. The decoders of DEVICE_DECODERS return the frames on the
current CUDA device (the others on the CPU): they decode in the training process, never in a
loader worker (a forked worker cannot use CUDA). Anything that goes wrong while opening or reading
raises `VideoReadError`, whose message is one line naming the file and what to do; a
decoder that is not installed raises `DecoderUnavailable` (one line saying how to get it).
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from vidpeft.data.stages import lap
from vidpeft.errors import UserError

DECODERS = ("decord", "pyav", "torchcodec", "nvdec")
DEVICE_DECODERS = ("nvdec",)  # frames decoded onto the GPU: in the training process, no loader workers
NVDEC_BATCH = 64  # frames per PyNvVideoCodec call: a call's frames hold GPU memory until the next call
NVCUVID = "nvcuvid.dll" if os.name == "nt" else "libnvcuvid.so.1"  # NVDEC's library, part of the NVIDIA driver


class VideoReadError(Exception):
    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the library printed
        super().__init__(
            f"cannot read video {self.path}: {self.reason}; "
            "re-encode it (vidpeft-prep) or remove it from the list"
        )


class DecoderUnavailable(UserError):
    """The chosen decoder cannot be used on this machine (not installed, or its libraries missing)."""

    def __init__(self, decoder: str, reason: str) -> None:
        super().__init__(f"decoder {decoder!r} is not available: {reason}; or choose another with "
                         f"--decoder ({', '.join(d for d in DECODERS if d != decoder)})")


class VideoReader(Protocol):
    path: Path
    num_frames: int
    fps: float

    def read(self, indices: np.ndarray) -> torch.Tensor: ...


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _require_frames(path: Path, num_frames: int) -> None:
    if num_frames <= 0:
        raise VideoReadError(path, "it has no video frames")


def _check_indices(path: Path, indices: np.ndarray, num_frames: int) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError("read() needs at least one frame index")
    if indices.min() < 0 or indices.max() >= num_frames:
        raise IndexError(f"{path}: frame indices must lie in [0, {num_frames}), got {indices.min()}..{indices.max()}")
    return indices


class DecordReader:
    def __init__(self, path: Path) -> None:
        import decord

        self.path = path
        try:
            self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
            self.num_frames = len(self._reader)
            self.fps = float(self._reader.get_avg_fps())
        except Exception as error:  # decord raises its own DECORDError and RuntimeError
            # decord finds no video stream when it lacks the codec (AV1, for one)
            hint = "; its codec may be one decord lacks (AV1): use decoder 'pyav'" if "video stream" in str(error) else ""
            raise VideoReadError(path, f"decord cannot open it ({_first_line(error)}){hint}") from None
        _require_frames(path, self.num_frames)

    def read(self, indices: np.ndarray) -> torch.Tensor:
        indices = _check_indices(self.path, indices, self.num_frames)
        try:
            frames = self._reader.get_batch(indices.tolist()).asnumpy()
        except Exception as error:
            raise VideoReadError(self.path, f"decord failed while decoding ({_first_line(error)})") from None
        return torch.from_numpy(frames)


# Opening a file, FFmpeg decodes frames to probe the stream (for H.264, up to 7 to guess its
# reorder delay: 1.3 of the 1.4 ms an open cost on a 428x240 mp4); probing on keyframes only
# cost 0.15 ms and leaves what the reader uses (timestamps, packets, rate) as it was. Only the
# pixel format stays unknown until the first decoded frame, which carries its own.
PROBE_OPTIONS = {"skip_frame": "nonkey"}


class PyAVReader:
    """Demuxes the file once at open (no decoding) and keeps its packets: frame i is the one with
    the i-th presentation timestamp. read() decodes those packets from the last keyframe before
    the first frame wanted, skipping the non-reference frames it does not want (no other frame
    depends on them: FFmpeg's skip_frame NONREF), converting only the frames asked for, and
    stops after the last one; nothing is read from the file twice. Files without usable
    timestamps are decoded from the start, counting frames."""

    def __init__(self, path: Path) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        self.path = path
        # one colour converter for all frames: frame.to_ndarray(format=...) sets up a new
        # swscale context per frame, half of its 0.3 ms on a 428x240 frame
        self._rgb = VideoReformatter()
        try:
            self._container = av.open(str(path), options=PROBE_OPTIONS)
            if not self._container.streams.video:
                raise VideoReadError(path, "it has no video stream")
            stream = self._container.streams.video[0]
            stream.codec_context.thread_count = 1
            self.fps = float(stream.average_rate or stream.base_rate or 0)
            self._packets = [p for p in self._container.demux(stream) if p.size > 0]  # decode order
        except VideoReadError:
            raise
        except Exception as error:  # av.error.FFmpegError and OSError subclasses
            raise VideoReadError(path, f"PyAV cannot open it ({_first_line(error)})") from None
        self.num_frames = len(self._packets)
        _require_frames(path, self.num_frames)
        lap("open + demux (index)")
        self._pts = None
        if all(p.pts is not None and p.dts is not None for p in self._packets):
            pts = np.array(sorted(p.pts for p in self._packets), dtype=np.int64)
            if len(np.unique(pts)) == len(pts):
                self._pts = pts

    def read(self, indices: np.ndarray) -> torch.Tensor:
        indices = _check_indices(self.path, indices, self.num_frames)
        wanted, inverse = np.unique(indices, return_inverse=True)
        try:
            frames = None
            if self._pts is not None:  # from the keyframe before the clip; from the first if that one is not enough
                frames = self._decode_packets(wanted, self._keyframe_before(int(self._pts[wanted[0]])))
                frames = frames if frames is not None else self._decode_packets(wanted, 0)
            if frames is None:
                frames = self._read_from_start(wanted)
        except VideoReadError:
            raise
        except Exception as error:
            raise VideoReadError(self.path, f"PyAV failed while decoding ({_first_line(error)})") from None
        frames = np.stack(frames)
        return torch.from_numpy(frames if len(wanted) == len(indices) and (wanted == indices).all() else frames[inverse])

    def _keyframe_before(self, pts: int) -> int:
        """Position (decode order) of the last keyframe presented at or before `pts`; 0 if none."""
        return max((k for k, p in enumerate(self._packets) if p.is_keyframe and p.pts <= pts), default=0)

    def _decode_packets(self, wanted: np.ndarray, start: int) -> list[np.ndarray] | None:
        """The wanted frames, decoding the packets from position `start`; None if the decoder's
        first frame comes after the first frame wanted (it needs an earlier start)."""
        targets = {int(self._pts[i]): n for n, i in enumerate(wanted)}
        first = int(self._pts[wanted[0]])
        decoded: list[np.ndarray | None] = [None] * len(wanted)
        found, started = 0, False
        context = self._container.streams.video[0].codec_context
        context.flush_buffers()  # nothing left from an earlier read
        lap("seek")
        for packet in [*self._packets[start:], None]:  # None drains the decoder's delayed frames
            if packet is not None:
                context.skip_frame = "DEFAULT" if packet.pts in targets else "NONREF"
            for frame in context.decode(packet):
                lap("decode: needed frames" if frame.pts is not None and frame.pts >= first
                    else "decode: frames before the first needed")
                if not started and (frame.pts is None or frame.pts > first):
                    return None
                started = True
                n = targets.get(frame.pts)
                if n is not None and decoded[n] is None:
                    decoded[n] = self._rgb.reformat(frame, format="rgb24").to_ndarray()
                    found += 1
                    lap("decode: colour conversion")
            if found == len(wanted):
                return decoded
        missing = int(wanted[decoded.index(None)])
        raise VideoReadError(self.path, f"the stream ends before frame {missing} although it has "
                             f"{self.num_frames} packets (truncated or corrupt file?)")

    def _read_from_start(self, wanted: np.ndarray) -> list[np.ndarray]:
        import av

        decoded: list[np.ndarray] = []
        last = int(wanted[-1])
        with av.open(str(self.path), options=PROBE_OPTIONS) as container:
            for number, frame in enumerate(container.decode(video=0)):
                if number == wanted[len(decoded)]:
                    decoded.append(self._rgb.reformat(frame, format="rgb24").to_ndarray())
                    if number == last:
                        break
        if len(decoded) < len(wanted):
            raise VideoReadError(
                self.path, f"the stream ends before frame {int(wanted[len(decoded)])} although it claims {self.num_frames} frames (truncated file?)"
            )
        return decoded


class TorchCodecReader:
    """torchcodec's VideoDecoder in exact seek mode (it scans the file once, so frame numbers
    are presentation order, as for the other decoders)."""

    def __init__(self, path: Path) -> None:
        video_decoder = torchcodec_decoder()
        self.path = path
        try:
            self._decoder = video_decoder(str(path), dimension_order="NHWC", seek_mode="exact",
                                          num_ffmpeg_threads=1)
            metadata = self._decoder.metadata
            self.num_frames = int(metadata.num_frames or 0)
            self.fps = float(metadata.average_fps or 0)
        except Exception as error:  # torchcodec raises ValueError / RuntimeError from FFmpeg
            raise VideoReadError(path, f"torchcodec cannot open it ({_first_line(error)})") from None
        _require_frames(path, self.num_frames)

    def read(self, indices: np.ndarray) -> torch.Tensor:
        indices = _check_indices(self.path, indices, self.num_frames)
        try:
            return self._decoder.get_frames_at(indices.tolist()).data
        except Exception as error:
            raise VideoReadError(self.path, f"torchcodec failed while decoding ({_first_line(error)})") from None


class NvdecReader:
    """NVIDIA's hardware decoder through PyNvVideoCodec's SimpleDecoder: it indexes the file's
    keyframes (a scan, no decoding), seeks to the keyframe before each wanted frame, decodes on the
    GPU and converts to RGB there (its own conversion, not FFmpeg's: README "Decoders and loader
    speed"). read() returns the frames on the current CUDA device. A process keeps one decoder per
    device and points it at each file it opens (creating an NVDEC session costs more than a clip)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            decoder = nvdec_session(path)
            self.num_frames = len(decoder)
            self.fps = float(decoder.get_stream_metadata().average_fps or 0)
        except Exception as error:  # PyNvVideoCodec raises RuntimeError / ValueError from its demuxer
            raise VideoReadError(path, f"PyNvVideoCodec cannot open it ({_first_line(error)})") from None
        _require_frames(path, self.num_frames)

    def read(self, indices: np.ndarray) -> torch.Tensor:
        indices = _check_indices(self.path, indices, self.num_frames)
        wanted, inverse = np.unique(indices, return_inverse=True)
        chunks = []
        try:
            decoder = nvdec_session(self.path)
            for start in range(0, len(wanted), NVDEC_BATCH):
                asked = wanted[start:start + NVDEC_BATCH].tolist()
                frames = decoder.get_batch_frames_by_index(asked)
                if len(frames) != len(asked):
                    raise VideoReadError(self.path, f"PyNvVideoCodec returned {len(frames)} of the frames "
                                         f"{asked[0]}..{asked[-1]} ({len(asked)}); truncated or corrupt file?")
                chunks.append(torch.stack([torch.from_dlpack(frame) for frame in frames]))
                # the decoder reuses the frames' memory at its next call: the copy above must be done by then
                torch.cuda.current_stream().synchronize()
        except VideoReadError:
            raise
        except Exception as error:
            raise VideoReadError(self.path, f"PyNvVideoCodec failed while decoding ({_first_line(error)})") from None
        frames = torch.cat(chunks)
        return frames[torch.from_numpy(inverse).to(frames.device)]


_NVDEC_SESSIONS: dict[int, list] = {}  # CUDA device index -> [SimpleDecoder, the file it reads]


def nvdec_session(path: Path):
    """This process's PyNvVideoCodec SimpleDecoder on the current CUDA device, reading `path`
    (open_video has checked that PyNvVideoCodec loads)."""
    import PyNvVideoCodec as nvc

    device = torch.cuda.current_device()
    session = _NVDEC_SESSIONS.get(device)
    if session is None:
        decoder = nvc.SimpleDecoder(str(path), gpu_id=device, use_device_memory=True,
                                    need_scanned_stream_metadata=True,  # the keyframe index it seeks by
                                    output_color_type=nvc.OutputColorType.RGB)
        _NVDEC_SESSIONS[device] = session = [decoder, path]
    elif session[1] != path:
        del _NVDEC_SESSIONS[device]  # if `path` cannot be opened, the next file gets a fresh decoder
        session[0].reconfigure_decoder(str(path))
        _NVDEC_SESSIONS[device] = session = [session[0], path]
    return session[0]


def nvdec_module():
    """PyNvVideoCodec, or DecoderUnavailable saying what is missing: the package, a CUDA device,
    NVDEC's driver library, or whatever stops PyNvVideoCodec from loading."""
    if not _installed("PyNvVideoCodec"):
        raise DecoderUnavailable("nvdec", "PyNvVideoCodec is not installed; pip install 'vidpeft[nvdec]' "
                                 "on a machine with an NVIDIA GPU and driver")
    if not torch.cuda.is_available():
        raise DecoderUnavailable("nvdec", "no CUDA device (torch.cuda.is_available() is False): NVDEC decodes "
                                 "on an NVIDIA GPU, with a CUDA build of torch")
    try:
        ctypes.CDLL(NVCUVID)
    except OSError:
        raise DecoderUnavailable("nvdec", f"NVDEC's library {NVCUVID} cannot be loaded; it comes with the NVIDIA "
                                 "driver (in a container, start it with NVIDIA_DRIVER_CAPABILITIES="
                                 "compute,utility,video)") from None
    try:
        import PyNvVideoCodec
    except Exception as error:  # noqa: BLE001 - its RuntimeError carries many lines of troubleshooting
        raise DecoderUnavailable("nvdec", f"PyNvVideoCodec cannot load ({_first_line(error)}); it needs "
                                 "the NVIDIA driver's video libraries (libnvcuvid, libnvidia-encode)") from None
    return PyNvVideoCodec


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a None entry in sys.modules (blocked, as in the tests)
        return False


def torchcodec_decoder():
    """torchcodec's VideoDecoder class, or DecoderUnavailable saying what is missing."""
    try:
        from torchcodec._core import ops
        from torchcodec.decoders import VideoDecoder
    except ImportError as error:
        raise DecoderUnavailable("torchcodec", f"torchcodec is not installed ({_first_line(error)}); "
                                 "pip install 'vidpeft[torchcodec]'") from None
    try:  # import succeeds without FFmpeg; loading the FFmpeg-dependent core says whether it is there
        ops.load_core_libraries()
    except Exception:  # noqa: BLE001 - torchcodec's RuntimeError holds a many-line traceback
        raise DecoderUnavailable("torchcodec", "torchcodec cannot load FFmpeg's shared libraries "
                                 "(versions 4 to 9); install them, e.g. apt-get install ffmpeg, "
                                 "conda install ffmpeg or brew install ffmpeg") from None
    return VideoDecoder


def check_decoder(decoder: str) -> None:
    """Raise UserError for an unknown decoder name, DecoderUnavailable for a missing one."""
    if decoder not in DECODERS:
        raise UserError(f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}")
    if decoder == "torchcodec":
        torchcodec_decoder()
    elif decoder == "nvdec":
        nvdec_module()
    elif decoder == "decord":
        try:
            import decord  # noqa: F401
        except ImportError:
            raise DecoderUnavailable("decord", "decord is not installed (it has wheels for x86-64 Linux "
                                     "and Windows only); pip install decord") from None


def available_decoders() -> list[str]:
    """The decoders that work on this machine, in DECODERS order."""
    found = []
    for decoder in DECODERS:
        try:
            check_decoder(decoder)
        except DecoderUnavailable:
            continue
        found.append(decoder)
    return found


READERS = {"decord": DecordReader, "pyav": PyAVReader, "torchcodec": TorchCodecReader, "nvdec": NvdecReader}


def open_video(path: str | Path, decoder: str = "pyav") -> VideoReader:
    """Open `path` with `decoder` (one of DECODERS); raises VideoReadError if it cannot."""
    path = Path(path)
    check_decoder(decoder)
    if not path.is_file():
        raise VideoReadError(path, "no such file")
    return READERS[decoder](path)
