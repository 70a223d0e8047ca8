"""vidpeft-prep's --encoding: the default writes videos cheap to decode per training clip (a
keyframe every 64 frames, non-reference B-frames), recorded in prep_report.json; --encoding x264
keeps the old encoding; a dataset prepared before --encoding existed is resumed only with it."""
import json

import av
from av.video.frame import PictureType
import numpy as np
from prep_helpers import read_list, run_prep

from vidpeft.data.decode import available_decoders, open_video
from vidpeft.synthetic import make_dataset


def _frame_types(path) -> tuple[list[int], int]:
    """Keyframe positions (decode order) and the number of B-frames."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    keys = [i for i, f in enumerate(frames) if f.key_frame]
    return keys, sum(f.pict_type == PictureType.B for f in frames)


def test_default_encoding_is_fastseek_and_recorded(tmp_path, capsys):
    make_dataset("k400", tmp_path / "raw", classes=1, per_class=2, size=(96, 64), frames=140)
    code, report, _ = run_prep(capsys, "k400", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "new"))
    assert code == 0
    assert report["settings"]["encoding"] == "fastseek"
    assert report["x264_options"]["tune"] == "fastdecode" and "keyint=64" in report["x264_options"]["x264-params"]
    video = tmp_path / "new" / read_list(tmp_path / "new" / "train.csv")[0][0]
    keys, b_frames = _frame_types(video)
    assert keys == [0, 64, 128] and b_frames > 60
    code, report, _ = run_prep(capsys, "k400", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "old"),
                               "--encoding", "x264")
    assert code == 0 and report["settings"]["encoding"] == "x264" and report["x264_options"] == {
        "crf": "23", "preset": "veryfast"}
    assert _frame_types(tmp_path / "old" / read_list(tmp_path / "old" / "train.csv")[0][0])[0] == [0]
    # every decoder reads the new encoding frame-exactly (clip reads against one full decode)
    with av.open(str(video)) as container:
        full = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    for decoder in available_decoders():
        for indices in ([70, 74, 78, 82], [3, 60, 63, 64, 65], [139], [130, 5, 130]):
            assert np.array_equal(open_video(video, decoder).read(np.array(indices)).numpy(), full[indices]), decoder


def test_a_dataset_prepared_before_encoding_resumes_only_with_the_old_encoding(tmp_path, capsys):
    make_dataset("hmdb51", tmp_path / "raw", classes=1, per_class=2, size=(64, 48), frames=3)
    out = tmp_path / "out"
    assert run_prep(capsys, "hmdb51", "--src", str(tmp_path / "raw"), "--out", str(out), "--encoding", "x264")[0] == 0
    report = json.loads((out / "prep_report.json").read_text())
    del report["settings"]["encoding"]  # as vidpeft-prep wrote it before --encoding
    (out / "prep_report.json").write_text(json.dumps(report))
    code, _, text = run_prep(capsys, "hmdb51", "--src", str(tmp_path / "raw"), "--out", str(out))
    assert code == 2 and "encoding x264" in text and "--encoding x264" in text and text.count("\n") == 1
    code, report, _ = run_prep(capsys, "hmdb51", "--src", str(tmp_path / "raw"), "--out", str(out), "--encoding", "x264")
    assert code == 0 and report["skipped"] == 2
