"""vidpeft-prep ssv2 end to end on generated VP9 webm videos in both label-file namings."""
from fractions import Fraction

import pytest
from prep_helpers import WILD_DIR, check_held_out, check_outputs, read_list, run_prep, tree_hashes

from vidpeft.labels import label_map
from vidpeft.synthetic import make_dataset


@pytest.mark.parametrize("long_names", [False, True], ids=["labels.json", "something-v2-*.json"])
def test_ssv2_end_to_end(tmp_path, capsys, long_names):
    src, out = tmp_path / WILD_DIR, tmp_path / "out put"
    videos = make_dataset("ssv2", src, classes=2, per_class=3, frames=8, seed=1,
                          wild_names=long_names, ssv2_long_names=long_names)
    if long_names:
        assert (src / "labels" / "something-something-v2-labels.json").exists()
    before = tree_hashes(src)

    code, report, text = run_prep(capsys, "ssv2", "--src", str(src), "--out", str(out))

    assert code == 0, text
    assert (report["converted"], report["skipped"], report["failed"], report["missing"]) == \
        (6, 0, [], [])
    classes = label_map("ssv2")
    expected = {split: sorted((f"videos/{v.path.stem}.mp4", v.label) for v in videos
                              if v.split == split) for split in ("train", "val")}
    # test.csv is the official validation list; val.csv is held out of the training list
    assert sorted(read_list(out / "test.csv")) == expected["val"]
    check_held_out(out, expected["train"])
    assert "held out from the training list" in report["val_list"] and "val.csv: held out" in text
    assert (out / "labels.txt").read_text().splitlines() == classes
    assert all(classes[v.label] == v.class_name for v in videos)
    # webm 427x240 -> mp4 keeping the 240 px height (width rounded to even)
    check_outputs(out, expected["train"] + expected["val"], short_side=None, height=240,
                  frames=8, fps=Fraction(12))
    assert tree_hashes(src) == before


def test_ssv2_missing_and_truncated_webm_are_reported(tmp_path, capsys):
    src, out = tmp_path / "raw", tmp_path / "out"
    videos = make_dataset("ssv2", src, classes=1, per_class=4, size=(128, 96), frames=24)
    gone, cut = videos[0].path, videos[1].path
    gone.unlink()  # an annotation entry without its file (test setup, not the tool)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])  # webm keeps no count

    code, report, text = run_prep(capsys, "ssv2", "--src", str(src), "--out", str(out))

    assert code == 1
    assert report["missing"] == [f"train.json: {gone.stem}"]
    assert [f["path"] for f in report["failed"]] == [str(cut)]
    assert "truncated" in report["failed"][0]["reason"]
    assert report["converted"] == 2
    assert f"missing: train.json: {gone.stem}" in text
    listed = (out / "train_all.csv").read_text() + (out / "test.csv").read_text()
    assert f"videos/{gone.stem}.mp4" not in listed and f"videos/{cut.stem}.mp4" not in listed
    assert len(listed.splitlines()) == 2
