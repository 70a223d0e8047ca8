"""Fixtures shared by several test modules."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensor ops run fastest on one thread (what DataLoader workers use) on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def counter_video_root(tmp_path_factory, frames: int, height: int, width: int, listing: str):
    """A folder with one frame-counter video v.mp4 and `listing` as its list.csv."""
    from vidpeft.data.pattern_video import counter_frames, write_video

    root = tmp_path_factory.mktemp("counter")
    write_video(root / "v.mp4", counter_frames(frames, height, width))
    (root / "list.csv").write_text(listing)
    return root
