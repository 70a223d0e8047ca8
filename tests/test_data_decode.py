"""Both decoders on real encoded files: same frames, frame numbers as asked, clear errors."""
import numpy as np
import pytest
import torch

from vidpeft.data import VideoReadError, open_video
from vidpeft.data.pattern_video import counter_frames, frame_number, write_video

FRAMES = 40


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    frames = counter_frames(FRAMES, 64, 96)
    return {
        "mp4": write_video(folder / "clip with space.mp4", frames),
        "webm": write_video(folder / "clip.webm", frames, codec="libvpx-vp9"),
        "av1": write_video(folder / "clip.mkv", frames[:12], codec="libsvtav1"),
        "corrupt": _corrupt(folder / "broken.mp4"),
    }


def _corrupt(path):
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    return path


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_reads_the_frames_asked_for(videos, decoder, kind):
    reader = open_video(videos[kind], decoder)
    assert reader.num_frames == FRAMES  # webm stores no frame count: PyAV counts packets
    assert reader.fps == pytest.approx(25.0)
    indices = np.array([39, 3, 3, 0, 17, 39])  # unsorted, repeated, last frame
    frames = reader.read(indices)
    assert frames.dtype == torch.uint8 and frames.shape == (6, 64, 96, 3)
    assert [frame_number(f) for f in frames] == indices.tolist()


def test_decoders_give_identical_frames_on_h264(videos):
    indices = np.array([0, 5, 6, 20, 21, 38, 39, 5])
    decord_frames = open_video(videos["mp4"], "decord").read(indices)
    pyav_frames = open_video(videos["mp4"], "pyav").read(indices)
    assert torch.equal(decord_frames, pyav_frames)


def test_av1_needs_pyav(videos):
    assert [frame_number(f) for f in open_video(videos["av1"], "pyav").read(np.arange(12))] == list(range(12))
    with pytest.raises(VideoReadError, match="AV1.*use decoder 'pyav'"):
        open_video(videos["av1"], "decord")


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_unreadable_files_raise_one_line_naming_them(videos, tmp_path, decoder):
    for path in (videos["corrupt"], tmp_path / "absent.mp4"):
        with pytest.raises(VideoReadError) as error:
            open_video(path, decoder)
        message = str(error.value)
        assert error.value.path == path
        assert message.startswith(f"cannot read video {path}: ") and "\n" not in message
        assert "remove it from the list" in message


def test_bad_arguments(videos):
    with pytest.raises(ValueError, match="choose one of decord, pyav"):
        open_video(videos["mp4"], "opencv")
    with pytest.raises(IndexError, match=r"\[0, 40\)"):
        open_video(videos["mp4"], "pyav").read(np.array([0, 40]))
