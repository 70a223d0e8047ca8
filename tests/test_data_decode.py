"""Every decoder on real encoded files: same frames, frame numbers as asked, clear errors.

TorchCodec is an optional extra (it needs FFmpeg's shared libraries): its tests run where it
loads; where it does not, the test of its one-line error runs instead."""
import subprocess
import sys
from fractions import Fraction

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
ALL = [pytest.param(d, marks=needs_torchcodec) if d == "torchcodec" else d for d in DECODERS]


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
