"""Every decoder on real encoded files: same frames, frame numbers as asked, clear errors.

TorchCodec is an optional extra (it needs FFmpeg's shared libraries): its tests run where it
loads; where it does not, the test of its one-line error runs instead. NVDEC (PyNvVideoCodec,
NVIDIA GPUs) likewise: its tests (`-k nvdec`, run by benchmarks/gpu_check.sh) read the same files
against PyAV where CUDA and PyNvVideoCodec are present; its one-line errors are tested everywhere."""
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidpeft.data import VideoReadError, open_video
from vidpeft.data.decode import DECODERS, DecoderUnavailable, available_decoders, check_decoder
from vidpeft.data.pattern_video import counter_frames, frame_number, write_video

FRAMES = 40
HAVE = available_decoders()
needs_torchcodec = pytest.mark.skipif("torchcodec" not in HAVE, reason="torchcodec or FFmpeg's libraries not installed")
ALL = [pytest.param(d, marks=needs_torchcodec) if d == "torchcodec" else d for d in DECODERS if d != "nvdec"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    frames = counter_frames(FRAMES, 64, 96)
    return {
        "mp4": write_video(folder / "clip with space.mp4", frames),
        "webm": write_video(folder / "clip.webm", frames, codec="libvpx-vp9"),
        "avi": write_video(folder / "clip.avi", frames, codec="mpeg4"),
        "odd": write_video(folder / "odd size.webm", counter_frames(FRAMES, 67, 97), codec="libvpx-vp9"),
        "vfr": _variable_frame_rate(folder / "vfr.mp4", frames),
        "av1": write_video(folder / "clip.mkv", frames[:12], codec="libsvtav1"),
        "corrupt": _corrupt(folder / "broken.mp4"),
    }


def _variable_frame_rate(path, frames):
    """H.264 whose frame durations alternate 40, 40, 120 ms (as phone videos vary)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        pts = 0
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += 120 if i % 3 == 0 else 40
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _corrupt(path):
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    return path


@pytest.mark.parametrize("decoder", ALL)
@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "odd", "vfr"])
def test_reads_the_frames_asked_for(videos, decoder, kind):
    reader = open_video(videos[kind], decoder)
    assert reader.num_frames == FRAMES  # webm stores no frame count: PyAV counts packets
    if kind != "vfr":
        assert reader.fps == pytest.approx(25.0)
    indices = np.array([39, 3, 3, 0, 17, 39])  # unsorted, repeated, last frame
    frames = reader.read(indices)
    height, width = (67, 97) if kind == "odd" else (64, 96)
    assert frames.dtype == torch.uint8 and frames.shape == (6, height, width, 3)
    assert [frame_number(f) for f in frames] == indices.tolist()


@pytest.mark.parametrize("decoder", [d for d in ALL if d != "pyav"])
@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "vfr"])
def test_decoders_give_identical_frames(videos, decoder, kind):
    indices = np.array([0, 5, 6, 20, 21, 38, 39, 5])
    assert torch.equal(open_video(videos[kind], decoder).read(indices), open_video(videos[kind], "pyav").read(indices))


@pytest.mark.parametrize("decoder", [d for d in ALL if d != "pyav"])
def test_odd_sizes_differ_only_in_colour_conversion(videos, decoder):
    """With an odd width or height the decoders convert the chroma edge differently (the
    documented difference): same frames, pixels within a small mean difference."""
    indices = np.arange(0, FRAMES, 3)
    ours = open_video(videos["odd"], decoder).read(indices).float()
    reference = open_video(videos["odd"], "pyav").read(indices).float()
    assert [frame_number(f) for f in ours] == indices.tolist()
    assert (ours - reference).abs().mean() < 2.0


def test_pyav_decodes_a_stream_without_timestamps_from_the_start(tmp_path):
    """A raw H.264 stream has no timestamps to seek by (decord and torchcodec refuse it)."""
    path = write_video(tmp_path / "raw.h264", counter_frames(FRAMES, 64, 96))
    reader = open_video(path, "pyav")
    assert reader.num_frames == FRAMES
    assert [frame_number(f) for f in reader.read(np.array([39, 3, 3, 0, 17]))] == [39, 3, 3, 0, 17]


def test_pyav_seeking_matches_decord_on_long_videos(tmp_path):
    """Keyframes 30 frames apart: PyAV seeks to the one before each clip and skips the
    non-reference frames on the way; every clip equals decord's (the reference decoder)."""
    frames = counter_frames(160, 64, 96)
    path = write_video(tmp_path / "long.mp4", frames, options={"g": "30", "bf": "3"})
    pyav, decord_ = open_video(path, "pyav"), open_video(path, "decord")
    rng = np.random.default_rng(0)
    for start in [0, 29, 30, 31, 59, 60, 121, *rng.integers(0, 130, 8).tolist()]:
        indices = np.arange(start, start + 29, 4)
        clip = pyav.read(indices)
        assert [frame_number(f) for f in clip] == indices.tolist()
        assert torch.equal(clip, decord_.read(indices))


def test_variable_frame_rate_fps_is_the_average(videos):
    """40 frames lasting 2.72 s in all: decord and PyAV report 40 / 2.72 s = 14.7 fps, torchcodec
    its own average (15.2 fps here, the documented difference); frame numbers agree (above)."""
    rates = {d: open_video(videos["vfr"], d).fps for d in HAVE}
    assert rates["pyav"] == pytest.approx(rates["decord"])
    for rate in rates.values():
        assert 14 < rate < 16


def test_av1_needs_pyav(videos):
    assert [frame_number(f) for f in open_video(videos["av1"], "pyav").read(np.arange(12))] == list(range(12))
    with pytest.raises(VideoReadError, match="AV1.*use decoder 'pyav'"):
        open_video(videos["av1"], "decord")


@pytest.mark.parametrize("decoder", ALL)
def test_unreadable_files_raise_one_line_naming_them(videos, tmp_path, decoder):
    for path in (videos["corrupt"], tmp_path / "absent.mp4"):
        with pytest.raises(VideoReadError) as error:
            open_video(path, decoder)
        message = str(error.value)
        assert error.value.path == path
        assert message.startswith(f"cannot read video {path}: ") and "\n" not in message
        assert "remove it from the list" in message


def test_bad_arguments(videos):
    with pytest.raises(ValueError, match="choose one of decord, pyav, torchcodec"):
        open_video(videos["mp4"], "opencv")
    with pytest.raises(IndexError, match=r"\[0, 40\)"):
        open_video(videos["mp4"], "pyav").read(np.array([0, 40]))


def _one_line(message: str) -> bool:
    return "\n" not in message and message.count("decoder 'torchcodec' is not available") == 1


def test_torchcodec_not_installed_is_a_one_line_error(videos, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # what `import torchcodec` does when absent
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
    monkeypatch.setitem(sys.modules, "torchcodec._core", None)
    with pytest.raises(DecoderUnavailable) as error:
        open_video(videos["mp4"], "torchcodec")
    assert _one_line(str(error.value)) and "pip install 'vidpeft[torchcodec]'" in str(error.value)
    assert "torchcodec" not in available_decoders()


@needs_torchcodec
def test_torchcodec_without_ffmpeg_libraries_is_a_one_line_error(videos):
    """A fresh process where loading FFmpeg's libraries fails, as on a machine without them:
    torchcodec itself imports, and our error says what to install."""
    code = (
        "import torch\n"
        "real = torch.ops.load_library\n"
        "def load(path):\n"
        "    if 'libtorchcodec_core' in str(path): raise OSError('libavutil.so.57: cannot open shared object file')\n"
        "    real(path)\n"
        "torch.ops.load_library = load\n"
        "from vidpeft.data.decode import open_video, DecoderUnavailable\n"
        "try:\n"
        f"    open_video({str(videos['mp4'])!r}, 'torchcodec')\n"
        "except DecoderUnavailable as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert _one_line(out.strip()) and "FFmpeg's shared libraries" in out and "apt-get install ffmpeg" in out


def test_check_decoder_accepts_every_available_one():
    for decoder in HAVE:
        check_decoder(decoder)
    assert {"pyav"} <= set(HAVE)


# ---- nvdec: NVIDIA's hardware decoder (PyNvVideoCodec); frames come back on the GPU ----
def _unavailable(decoder: str) -> str:
    """Why `decoder` cannot run here (its one-line error), or '' where it can."""
    try:
        check_decoder(decoder)
    except DecoderUnavailable as error:
        return str(error)
    return ""


needs_nvdec = pytest.mark.skipif(bool(_unavailable("nvdec")), reason=_unavailable("nvdec"))
# the documented tolerance of NVDEC's YUV->RGB conversion against FFmpeg's (PyAV): mean absolute difference per pixel
NVDEC_MEAN_TOLERANCE = 2.0
# frame sizes (height, width) NVDEC decodes: its minimum is 128x128 for VP9 and AV1 (48x16 for H.264)
NVDEC_SIZE, NVDEC_ODD = (128, 160), (129, 161)


@pytest.fixture(scope="module")
def nvdec_videos(tmp_path_factory, videos):
    """The kinds of `videos`, at sizes NVDEC decodes."""
    folder = tmp_path_factory.mktemp("nvdec_videos")
    frames = counter_frames(FRAMES, *NVDEC_SIZE)
    return {
        "mp4": write_video(folder / "clip with space.mp4", frames),
        "webm": write_video(folder / "clip.webm", frames, codec="libvpx-vp9"),
        "avi": write_video(folder / "clip.avi", frames, codec="mpeg4"),
        "odd": write_video(folder / "odd size.webm", counter_frames(FRAMES, *NVDEC_ODD), codec="libvpx-vp9"),
        "vfr": _variable_frame_rate(folder / "vfr.mp4", frames),
        "corrupt": videos["corrupt"],
    }


def _nvdec_read(path, indices) -> torch.Tensor:
    frames = open_video(path, "nvdec").read(np.asarray(indices))
    assert frames.device.type == "cuda" and frames.dtype == torch.uint8
    return frames.cpu()


@needs_nvdec
@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "odd", "vfr"])
def test_nvdec_reads_the_frames_asked_for(nvdec_videos, kind):
    reader = open_video(nvdec_videos[kind], "nvdec")
    assert reader.num_frames == FRAMES
    if kind != "vfr":
        assert reader.fps == pytest.approx(25.0)
    indices = [39, 3, 3, 0, 17, 39]  # unsorted, repeated, last frame
    frames = _nvdec_read(nvdec_videos[kind], indices)
    assert frames.shape == (6, *(NVDEC_ODD if kind == "odd" else NVDEC_SIZE), 3)
    assert [frame_number(f) for f in frames] == indices


def _difference(ours: torch.Tensor, reference: torch.Tensor, record_property) -> float:
    """Mean absolute pixel difference, recorded with its maximum (the GPU check's gpu_tests.xml and
    summary hold them)."""
    difference = (ours.float() - reference.float()).abs()
    record_property("mean_abs_difference", round(float(difference.mean()), 3))
    record_property("max_abs_difference", int(difference.max()))
    return float(difference.mean())


@needs_nvdec
@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "odd", "vfr", "natural"])
def test_nvdec_matches_pyav_within_its_colour_conversion(nvdec_videos, tmp_path, record_property, kind):
    """The same frames as PyAV for the same indices; pixels within NVDEC's colour conversion."""
    if kind == "natural":  # textured moving content at a K400-like size, as vidpeft-prep encodes it
        from vidpeft.prep.transcode import EncodeSettings
        from vidpeft.synthetic import render

        rendered = render("rotate_cw", np.random.default_rng(0), (320, 180), FRAMES)
        path = write_video(tmp_path / "natural.mp4", rendered, options=EncodeSettings().x264_options())
        indices = np.array([0, 5, 6, 20, 21, 38, 39, 5])
    else:
        path, indices = nvdec_videos[kind], np.array([0, 5, 6, 20, 21, 38, 39, 5])
        assert [frame_number(f) for f in _nvdec_read(path, indices)] == indices.tolist()
    reference = open_video(path, "pyav").read(indices)
    assert _difference(_nvdec_read(path, indices), reference, record_property) < NVDEC_MEAN_TOLERANCE


@needs_nvdec
def test_nvdec_seeks_frame_exactly_in_long_videos(tmp_path):
    """Keyframes 30 frames apart with B-frames: every clip (and one read of more frames than one
    PyNvVideoCodec call takes) holds the frames asked for, as PyAV's do."""
    path = write_video(tmp_path / "long.mp4", counter_frames(160, *NVDEC_SIZE), options={"g": "30", "bf": "3"})
    reader = open_video(path, "nvdec")
    rng = np.random.default_rng(0)
    for start in [0, 29, 30, 31, 59, 60, 121, *rng.integers(0, 130, 8).tolist()]:
        indices = np.arange(start, start + 29, 4)
        assert [frame_number(f) for f in reader.read(indices).cpu()] == indices.tolist()
    everything = np.arange(159, -1, -1)  # 160 frames, backwards: three calls of at most 64
    assert [frame_number(f) for f in reader.read(everything).cpu()] == everything.tolist()


@needs_nvdec
def test_nvdec_readers_of_different_files_interleave(nvdec_videos):
    """One decoder per process is pointed at each file: readers opened together still read their own."""
    mp4, odd = open_video(nvdec_videos["mp4"], "nvdec"), open_video(nvdec_videos["odd"], "nvdec")
    for reader, size, indices in [(mp4, NVDEC_SIZE, [1, 2]), (odd, NVDEC_ODD, [30]), (mp4, NVDEC_SIZE, [39, 0])]:
        frames = reader.read(np.array(indices)).cpu()
        assert frames.shape[1:3] == size and [frame_number(f) for f in frames] == indices


@needs_nvdec
def test_nvdec_unreadable_files_raise_one_line_naming_them(nvdec_videos, tmp_path):
    for path in (nvdec_videos["corrupt"], tmp_path / "absent.mp4"):
        with pytest.raises(VideoReadError) as error:
            open_video(path, "nvdec")
        assert str(error.value).startswith(f"cannot read video {path}: ") and "\n" not in str(error.value)
    assert [frame_number(f) for f in _nvdec_read(nvdec_videos["mp4"], [7])] == [7]  # and the next file reads


@needs_nvdec
def test_nvdec_dataset_items_as_pyav_device_augment_keeps_frames_on_the_gpu(nvdec_videos):
    """Through VideoDataset: with --device-augment the frames stay on the GPU (the plans the same as
    PyAV's); the CPU transforms and the test views get them on the CPU."""
    from vidpeft.data import DataConfig, Sample, VideoDataset

    samples = [Sample(nvdec_videos["mp4"], 0), Sample(nvdec_videos["webm"], 1)]
    cfg = DataConfig(frames=4, stride=2, input_size=32)
    for device_augment in (True, False):
        ours, theirs = (VideoDataset(samples, "train", cfg.override(decoder=d, device_augment=device_augment),
                                     pixels=True) for d in ("nvdec", "pyav"))
        for key in [(0, 0), (3, 1)]:
            (item, label, _), (reference, label_ref, _) = ours[key], theirs[key]
            assert label == label_ref
            if device_augment:  # the frames (or the region the crops cover) and the same draws
                assert item.frames.device.type == "cuda" and item.plans == reference.plans
                assert item.frames.shape == reference.frames.shape
                assert (item.frames.cpu().float() - reference.frames.float()).abs().mean() < NVDEC_MEAN_TOLERANCE
            else:
                assert item.device.type == "cpu" and item.shape == reference.shape
    views = VideoDataset(samples, "test", cfg.override(decoder="nvdec", test_clips=2, test_crops=1))[0][0]
    assert views.device.type == "cpu" and views.shape == (2, 3, 4, 32, 32)


@needs_nvdec
def test_nvdec_trains_and_tests_through_vidpeft_train(tmp_path, capsys):
    """vidpeft-train --decoder nvdec on the GPU: no loader workers (auto), training clips augmented on the
    device, the test views scored; the losses those of the same run with PyAV (to within NVDEC's colour
    conversion)."""
    import csv

    import yaml

    from prep_helpers import tiny_motion_data
    from vidpeft.cli import train as train_cli

    data = tiny_motion_data(tmp_path)

    def run(decoder: str, *extra: str) -> tuple[list[float], int]:
        work = tmp_path / decoder
        assert train_cli.main(["--backbone", "videomae-micro", "--method", "lora", "--data", str(data), "--work-dir",
                               str(work), "--epochs", "2", "--frames", "4", "--stride", "2", "--input-size", "32",
                               "--batch-size", "2", "--clips", "1", "--crops", "1", "--amp", "none", "--no-compile",
                               "--eval-every", "0", "--decoder", decoder, *extra]) == 0
        resolved = yaml.safe_load((work / "config.yaml").read_text())["resolved"]
        assert resolved["device_augment"] is True
        assert yaml.safe_load((work / "eval.json").read_text())["videos"] > 0
        with (work / "log.csv").open() as f:
            return [float(row["train_loss"]) for row in csv.DictReader(f)], resolved["num_workers"]

    (ours, workers), (theirs, _) = run("nvdec"), run("pyav", "--num-workers", "0")  # no fork after CUDA
    assert workers == 0
    assert "loader: 0 worker(s) per training process (auto: decoder nvdec decodes in the training process)" \
        in capsys.readouterr().out
    assert ours == pytest.approx(theirs, rel=0.05)


def _block_nvdec(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # what an absent package looks like to import


def _nvdec_error(videos) -> str:
    with pytest.raises(DecoderUnavailable) as error:
        open_video(videos["mp4"], "nvdec")
    message = str(error.value)
    assert "\n" not in message and message.startswith("decoder 'nvdec' is not available: ")
    return message


def test_nvdec_not_installed_is_a_one_line_error(videos, monkeypatch):
    _block_nvdec(monkeypatch)
    assert "PyNvVideoCodec is not installed; pip install 'vidpeft[nvdec]'" in _nvdec_error(videos)
    assert "nvdec" not in available_decoders()


def _installed_nvdec(monkeypatch, cuda: bool, nvcuvid: bool) -> None:
    """As if PyNvVideoCodec were installed, on a machine with or without a CUDA device and NVDEC's library."""
    import ctypes
    import importlib.util

    from vidpeft.data import decode

    real_find_spec, real_cdll = importlib.util.find_spec, ctypes.CDLL
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "PyNvVideoCodec"
                        else real_find_spec(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)

    def cdll(name, *args, **kwargs):
        if name == decode.NVCUVID and not nvcuvid:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return object() if name == decode.NVCUVID else real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", cdll)


def test_nvdec_without_a_cuda_device_is_a_one_line_error(videos, monkeypatch):
    _installed_nvdec(monkeypatch, cuda=False, nvcuvid=True)
    assert "no CUDA device" in _nvdec_error(videos)


def test_nvdec_without_the_drivers_video_library_is_a_one_line_error(videos, monkeypatch):
    _installed_nvdec(monkeypatch, cuda=True, nvcuvid=False)
    message = _nvdec_error(videos)
    assert "libnvcuvid.so.1 cannot be loaded" in message and "NVIDIA driver" in message


def test_nvdec_that_fails_to_load_is_a_one_line_error(videos, monkeypatch):
    """PyNvVideoCodec raises a RuntimeError of many lines when the driver's libraries are missing."""
    _installed_nvdec(monkeypatch, cuda=True, nvcuvid=True)

    class Failing:
        def find_spec(self, name, path=None, target=None):
            if name == "PyNvVideoCodec":
                raise RuntimeError("Failed to load NVENC library: libnvidia-encode.so.1: cannot open shared "
                                   "object file\n\n=== TROUBLESHOOTING STEPS ===\n...")
            return None

    monkeypatch.delitem(sys.modules, "PyNvVideoCodec", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Failing(), *sys.meta_path])
    message = _nvdec_error(videos)
    assert "PyNvVideoCodec cannot load (RuntimeError: Failed to load NVENC library: libnvidia-encode.so.1" in message


def test_nvdec_decodes_in_the_training_process(monkeypatch, videos):
    """No loader workers with a GPU decoder: auto resolves to 0, a number is refused in one line."""
    from vidpeft.data import DataConfig, Sample, VideoDataset, build_loader
    from vidpeft.data.config import resolve_num_workers
    from vidpeft.errors import UserError

    assert resolve_num_workers(None, "nvdec") == 0 and resolve_num_workers(None, "pyav") >= 1
    with pytest.raises(UserError, match="^data.num_workers: 2: decoder 'nvdec' decodes on the GPU in the training"):
        DataConfig(decoder="nvdec", num_workers=2)
    monkeypatch.setattr("vidpeft.data.dataset.check_decoder", lambda decoder: None)  # as where nvdec is available
    dataset = VideoDataset([Sample(videos["mp4"], 0)], "train", DataConfig(decoder="nvdec", num_workers=0))
    with pytest.raises(UserError, match="^num_workers 2: decoder 'nvdec' decodes on the GPU"):
        build_loader(dataset, 1, num_workers=2)


class _StandInDecoder:
    """PyNvVideoCodec's SimpleDecoder as our reader uses it, decoding with PyAV on the CPU: at most 64
    sorted indices a call, and, like NVDEC's surfaces, the frames of a call are overwritten by the next."""

    calls: list = []

    def __init__(self, path, gpu_id=0, use_device_memory=True, need_scanned_stream_metadata=False,
                 output_color_type=None):
        self.reconfigure_decoder(path)

    def reconfigure_decoder(self, path):
        self.reader = open_video(path, "pyav")
        self.buffer = np.zeros((64, *self.reader.read(np.array([0])).shape[1:]), np.uint8)
        _StandInDecoder.calls.append(("open", Path(path)))

    def __len__(self):
        return self.reader.num_frames

    def get_stream_metadata(self):
        return type("Metadata", (), {"average_fps": self.reader.fps})()

    def get_batch_frames_by_index(self, indices):
        assert len(indices) <= 64 and indices == sorted(set(indices))
        _StandInDecoder.calls.append(("read", len(indices)))
        self.buffer[:len(indices)] = self.reader.read(np.array(indices)).numpy()
        return list(self.buffer[:len(indices)])  # views, as DLPack hands NVDEC's frames over


def test_nvdec_reader_on_a_stand_in_decoder(videos, tmp_path, monkeypatch):
    """What the nvdec reader adds to PyNvVideoCodec, on CPU: frame order for unsorted, repeated and
    more than 64 indices, a copy of each call's frames before the next, one decoder re-pointed between
    files only when the file changes, and the same frames as PyAV."""
    from types import SimpleNamespace

    from vidpeft.data import decode

    stand_in = SimpleNamespace(SimpleDecoder=_StandInDecoder, OutputColorType=SimpleNamespace(RGB="RGB"))
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", stand_in)
    monkeypatch.setattr(decode, "nvdec_module", lambda: stand_in)
    monkeypatch.setattr(decode, "_NVDEC_SESSIONS", {})
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: SimpleNamespace(synchronize=lambda: None))
    _StandInDecoder.calls = []
    path = write_video(tmp_path / "long.mp4", counter_frames(100, 64, 96))
    long, odd = open_video(path, "nvdec"), open_video(videos["odd"], "nvdec")
    assert (long.num_frames, long.fps) == (100, pytest.approx(25.0))
    many = np.concatenate([np.arange(100)[::-1], np.arange(100), [5, 5]])
    for reader, indices in [(long, many), (long, np.array([39, 3, 3, 0])), (odd, np.array([7, 2])), (long, many)]:
        frames = reader.read(indices)
        assert [frame_number(f) for f in frames] == indices.tolist()
        assert torch.equal(frames, open_video(reader.path, "pyav").read(indices))
    assert _StandInDecoder.calls == [("open", path), ("open", videos["odd"]), ("open", path), ("read", 64),
                                     ("read", 36), ("read", 3), ("open", videos["odd"]), ("read", 2),
                                     ("open", path), ("read", 64), ("read", 36)]
