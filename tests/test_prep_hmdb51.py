"""vidpeft-prep hmdb51: class folders, per-class .rar files, split txt files or their .rar."""
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import rarfile
from prep_helpers import WILD_DIR, check_held_out, check_outputs, read_list, run_prep, tree_hashes
from rar4 import write_rar4

from vidpeft.labels import label_map
from vidpeft.prep.archives import ArchiveReadError, list_members
from vidpeft.synthetic import make_dataset

SPLITS = "testTrainMulti_7030_splits"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Extracted layout: hmdb51_org/<class>/<wild name>.avi + the split txt files."""
    root = tmp_path_factory.mktemp("hmdb") / WILD_DIR
    videos = make_dataset("hmdb51", root, classes=3, per_class=3, size=(160, 120), frames=5,
                          wild_names=True)
    return root, videos


def pack_rars(raw_root: Path, dst: Path, splits_as_rar: bool) -> Path:
    """The download's layout: <class>.rar per class, splits as txt files or one .rar."""
    dst.mkdir()
    for folder in sorted((raw_root / "hmdb51_org").iterdir()):
        write_rar4(dst / f"{folder.name}.rar",
                   {f"{folder.name}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())})
    split_files = {f"{SPLITS}/{p.name}": p.read_bytes()
                   for p in sorted((raw_root / SPLITS).iterdir())}
    if splits_as_rar:
        write_rar4(dst / "test_train_splits.rar", split_files)
    else:
        shutil.copytree(raw_root / SPLITS, dst / SPLITS)
    return dst


def split_lists(raw_root: Path) -> dict[str, list[tuple[str, int]]]:
    """What the lists must hold, read straight from the split files."""
    ids = {c: i for i, c in enumerate(label_map("hmdb51"))}
    lists: dict[str, list] = {}
    for f in sorted((raw_root / SPLITS).iterdir()):
        cls, k = f.name[:-len("_test_split1.txt")], f.name[-5]
        for line in f.read_text().splitlines():
            name, tag = line.rsplit(None, 1)
            role = {"1": "train", "2": "test"}[tag]
            lists.setdefault(f"{role}_split{k}.csv", []).append(
                (f"videos/{cls}/{Path(name).stem}.mp4", ids[cls]))
    return {k: sorted(v) for k, v in lists.items()}


def check_run(src, out, raw_root, videos, capsys, split="1"):
    before = tree_hashes(src)
    code, report, text = run_prep(capsys, "hmdb51", "--src", str(src), "--out", str(out),
                                  "--split", split)
    assert code == 0, text
    assert (report["converted"], report["failed"], report["missing"]) == (len(videos), [], [])
    expected = split_lists(raw_root)
    assert len(expected) == 6
    for name, rows in expected.items():
        assert sorted(read_list(out / name)) == rows, name
    assert report["test_list"] == f"test_split{split}"
    assert sorted(read_list(out / "test.csv")) == expected[f"test_split{split}.csv"]
    check_held_out(out, expected[f"train_split{split}.csv"])
    assert (out / "labels.txt").read_text().splitlines() == label_map("hmdb51")
    check_outputs(out, expected["train_split1.csv"] + expected["test_split1.csv"],
                  short_side=320, height=None, frames=5, fps=Fraction(30))
    assert tree_hashes(src) == before


def test_hmdb51_class_folders(raw, tmp_path, capsys):
    root, videos = raw
    names = [v.path.name for v in videos]
    for ch in " -#!()&'":
        assert any(ch in n for n in names), ch
    assert any(n.startswith("-") for n in names)
    check_run(root, tmp_path / "out", root, videos, capsys, split="2")


@pytest.mark.parametrize("splits_as_rar", [False, True],
                         ids=["class-rars+split-txt", "class-rars+test_train_splits.rar"])
def test_hmdb51_rar_files(raw, tmp_path, capsys, splits_as_rar):
    root, videos = raw
    src = pack_rars(root, tmp_path / "rars (download)", splits_as_rar)
    check_run(src, tmp_path / "out", root, videos, capsys)


def test_rar4_helper_reads_back_through_both_readers(raw, tmp_path):
    root, videos = raw
    src = pack_rars(root, tmp_path / "rars", splits_as_rar=True)
    archive = src / f"{videos[0].class_name}.rar"
    expected = sorted(f"{videos[0].class_name}/{v.path.name}" for v in videos
                      if v.class_name == videos[0].class_name)
    assert sorted(list_members(archive)) == expected
    with rarfile.RarFile(archive) as rf:  # an independent reader agrees
        assert sorted(rf.namelist()) == expected
        assert rf.read(expected[0]) == (root / "hmdb51_org" / expected[0]).read_bytes()


def test_hmdb51_unreadable_class_rar_is_reported(raw, tmp_path, capsys):
    root, videos = raw
    src = pack_rars(root, tmp_path / "rars", splits_as_rar=False)
    broken = src / f"{videos[0].class_name}.rar"
    broken.write_bytes(broken.read_bytes()[:30])  # a truncated download (test setup)

    code, report, text = run_prep(capsys, "hmdb51", "--src", str(src), "--out",
                                  str(tmp_path / "out"))

    assert code == 1
    assert [f["path"] for f in report["failed"]] == [str(broken)]
    assert report["missing"] == []  # its entries are not "missing": the archive is broken
    assert report["converted"] == sum(v.class_name != videos[0].class_name for v in videos)
    assert f"failed: {broken}" in text


def test_missing_libarchive_gives_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "libarchive", None)
    with pytest.raises(ArchiveReadError) as e:
        list_members(tmp_path / "x.rar")
    assert "pip install libarchive-c" in str(e.value) and "\n" not in str(e.value)
