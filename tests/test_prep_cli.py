"""vidpeft-prep command line: help text, one-line errors for bad input, scripts, sizes."""
import subprocess
import sys
from pathlib import Path

import pytest
from prep_helpers import probe_video, read_list, run_prep

from vidpeft.prep.transcode import output_size
from vidpeft.synthetic import make_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_help_documents_layouts_outputs_and_exit_codes():
    result = subprocess.run([str(Path(sys.executable).with_name("vidpeft-prep")), "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    for text in ("ssv2", "k400", "hmdb51", "validate.csv", "test_train_splits.rar",
                 "prep_report.json", "exit status", "130"):
        assert text in result.stdout, text


@pytest.mark.parametrize("dataset", ["ssv2", "k400", "hmdb51"])
def test_empty_folder_is_a_one_line_layout_error(tmp_path, capsys, dataset):
    (tmp_path / "raw").mkdir()
    code, report, text = run_prep(capsys, dataset, "--src", str(tmp_path / "raw"),
                                  "--out", str(tmp_path / "out"))
    assert code == 2 and report == {}
    assert text.startswith("error: ") and text.count("\n") == 1
    assert str(tmp_path / "raw") in text


def test_missing_src_folder(tmp_path, capsys):
    code, _, text = run_prep(capsys, "k400", "--src", str(tmp_path / "nope"),
                             "--out", str(tmp_path / "out"))
    assert code == 2 and "no such folder" in text


def k400_with_a_class_outside_the_400(src: Path) -> Path:
    """A tiny K400 download whose first train row names a class Kinetics-400 does not have."""
    make_dataset("k400", src, classes=1, per_class=3, size=(64, 48), frames=2)
    csv = src / "annotations" / "train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], "flying a kite at dawn" + lines[1][lines[1].index(","):],
                              *lines[2:]]) + "\n")
    return csv


def test_unknown_k400_label_names_the_csv_line(tmp_path, capsys):
    csv = k400_with_a_class_outside_the_400(tmp_path / "raw")
    code, _, text = run_prep(capsys, "k400", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{csv}:2: label 'flying a kite at dawn'" in text and "--labels dataset" in text


def test_thin_script_and_short_side_override(tmp_path):
    src, out = tmp_path / "raw", tmp_path / "out"
    make_dataset("hmdb51", src, classes=1, per_class=2, size=(175, 99), frames=3)
    result = subprocess.run([sys.executable, str(ROOT / "tools/preprocess/hmdb51.py"),
                             "--src", str(src), "--out", str(out), "--short-side", "0",
                             "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = read_list(out / "train.csv") + read_list(out / "test.csv")
    assert [(probe_video(out / r).width, probe_video(out / r).height) for r, _ in rows] == \
        [(176, 100)] * 2  # source size kept, rounded to even


def test_output_size_keeps_aspect_and_even_sides():
    assert output_size(427, 240, 0) == (428, 240)
    assert output_size(340, 256, 320) == (426, 320)
    assert output_size(480, 640, 320) == (320, 426)
    assert output_size(320, 240, 320) == (426, 320)


def test_display_rotation_is_applied(tmp_path, capsys):
    """A phone clip stored 96x54 with a 90-degree display matrix comes out 54x96, as players show it."""
    import av
    import numpy as np

    src, out = tmp_path / "raw", tmp_path / "out"
    make_dataset("k400", src, classes=1, per_class=2, size=(64, 48), frames=6)
    clip = sorted(src.rglob("*.mp4"))[0]
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 54, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(6):
            frame = np.zeros((54, 96, 3), np.uint8)
            frame[:, :16] = 255  # a white band on the stored frame's left
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    code, report, text = run_prep(capsys, "k400", "--src", str(src), "--out", str(out), "--short-side", "0")
    assert code == 0, text
    [converted] = [r for r, _ in read_list(out / "train.csv") + read_list(out / "val.csv") if clip.stem in r]
    assert (probe_video(out / converted).width, probe_video(out / converted).height) == (54, 96)
    with av.open(str(out / converted)) as container:
        first = next(container.decode(video=0))
        assert first.rotation == 0  # the rotation is in the pixels now, not in metadata
        luma = first.to_ndarray(format="gray")
    # rotated 90 degrees counter-clockwise, the left band is now along the bottom (as decord shows it)
    assert luma[-12:].mean() > 200 and luma[:60].mean() < 30


def test_labels_from_the_dataset_for_other_class_sets(tmp_path, capsys):
    """Kinetics-600/700 or a subset (a class outside the 400) and an SSv2 labels.json with its own ids."""
    import json

    k400_with_a_class_outside_the_400(tmp_path / "k")
    code, report, text = run_prep(capsys, "k400", "--src", str(tmp_path / "k"), "--out", str(tmp_path / "ko"),
                                  "--labels", "dataset")
    assert code == 0, text
    classes = (tmp_path / "ko" / "labels.txt").read_text().splitlines()
    assert len(classes) == 2 and "flying a kite at dawn" in classes
    assert report["labels"]["map"] == "dataset" and report["labels"]["not_in_community"] == ["flying a kite at dawn"]
    assert report["labels"]["community_classes_absent"] == 399
    assert "labels: dataset map, 2 classes; against the community map: 1 not in it, 399 of it absent" in text
    rows = read_list(tmp_path / "ko" / "train.csv") + read_list(tmp_path / "ko" / "val.csv")
    assert sorted(label for _, label in rows) == [0, 1]  # the kite row and the other class

    src = tmp_path / "s"
    make_dataset("ssv2", src, classes=2, per_class=2, size=(64, 48), frames=4)
    [labels_json] = src.rglob("labels.json")
    ids = {template: int(i) for template, i in json.loads(labels_json.read_text()).items()}
    templates = sorted(ids, key=ids.get, reverse=True)
    labels_json.write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))  # its own ids
    code, _, text = run_prep(capsys, "ssv2", "--src", str(src), "--out", str(tmp_path / "so"))
    assert code == 2 and "does not match the SSv2 label map" in text and "--labels dataset" in text
    code, report, text = run_prep(capsys, "ssv2", "--src", str(src), "--out", str(tmp_path / "so"),
                                  "--labels", "dataset")
    assert code == 0, text
    assert (tmp_path / "so" / "labels.txt").read_text().splitlines() == templates
    assert report["labels"]["renumbered"] == 174 and report["labels"]["community_classes_absent"] == 0
