"""Fixtures shared by several test modules."""
import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: benchmarks/gpu_check.sh runs these on a GPU"))])
def device(request, monkeypatch) -> str:
    """A test that asks for `device` runs on the CPU, and on CUDA where there is a GPU (the GPU check runs
    `pytest -k cuda`); on CUDA in float32 (no TF32 convolutions), as on the CPU."""
    if request.param == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    return request.param


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
