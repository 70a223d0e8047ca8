from pathlib import Path

import pytest

from vidpeft.data import AnnotationError, Sample, read_annotations


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_space_and_comma_forms_with_wild_names(tmp_path):
    listing = write(
        tmp_path / "train.csv",
        "videos/a.mp4 0\n"
        "videos/air drumming/b c.mp4 12\n"  # space in the path: split on the last one
        "videos/#122_Clean(Up)&Go!'s.avi\t3\n"  # HMDB51-style name, tab separator
        "\n"
        "videos/my dir/d.mp4,7\n"  # the benchmark's comma form, space in the path
        "videos/e,f.mp4 5\r\n",  # a comma in the name of a space-separated line
    )
    assert read_annotations(listing) == [
        Sample(tmp_path / "videos/a.mp4", 0),
        Sample(tmp_path / "videos/air drumming/b c.mp4", 12),
        Sample(tmp_path / "videos/#122_Clean(Up)&Go!'s.avi", 3),
        Sample(tmp_path / "videos/my dir/d.mp4", 7),
        Sample(tmp_path / "videos/e,f.mp4", 5),
    ]


def test_root_and_absolute_paths(tmp_path):
    absolute = tmp_path / "elsewhere" / "x.mp4"
    (tmp_path / "lists").mkdir()
    listing = write(tmp_path / "lists" / "val.csv", f"rel/y.mp4 1\n{absolute} 2\n")
    assert read_annotations(listing, root=tmp_path / "data") == [
        Sample(tmp_path / "data" / "rel/y.mp4", 1), Sample(absolute, 2)
    ]
    assert read_annotations(listing)[0].path == tmp_path / "lists" / "rel/y.mp4"


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("a.mp4 1\nb.mp4 one\n", 2, "no integer label"),
        ("a.mp4\n", 1, "no integer label"),
        ("a.mp4 1\n\nb.mp4 -3\n", 3, "negative"),
        (" 4\n", 1, "no integer label"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, line, words):
    listing = write(tmp_path / "test.csv", text)
    with pytest.raises(AnnotationError) as error:
        read_annotations(listing)
    message = str(error.value)
    assert message.startswith(f"{listing}:{line}: ") and words in message
    assert "<path> <label id>" in message or "labels.txt" in message
    assert "\n" not in message


def test_empty_and_missing_lists(tmp_path):
    empty = write(tmp_path / "empty.csv", "\n  \n")
    with pytest.raises(AnnotationError, match=r"empty\.csv: no videos listed"):
        read_annotations(empty)
    with pytest.raises(AnnotationError, match=r"missing\.csv: no such annotation file"):
        read_annotations(tmp_path / "missing.csv")
