"""Annotation lists: one `<path> <label id>` per line (or the benchmark's `<path>,<label id>`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidpeft.errors import UserError

FORMAT_HINT = "each line must be '<path> <label id>' (or '<path>,<label id>')"


class AnnotationError(UserError):
    """A list file that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def _split(line: str) -> tuple[str, str] | None:
    # Split on the LAST whitespace so paths with spaces survive; fall back to the comma form
    # when that does not end in an integer (e.g. "my dir/a.mp4,3").
    for parts in (line.rsplit(None, 1), line.rsplit(",", 1)):
        if len(parts) == 2 and parts[1].strip().lstrip("-").isdigit():
            return parts[0].strip(), parts[1].strip()
    return None


def read_annotations(list_file: str | Path, root: str | Path | None = None) -> list[Sample]:
    """Read a list file; relative paths are resolved against `root` (default: the list's folder)."""
    list_file = Path(list_file)
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{list_file}: no such annotation file; check the path (vidpeft-prep writes train.csv/val.csv/test.csv)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{list_file}: cannot read it as UTF-8 text ({error}); {FORMAT_HINT}") from None
    base = Path(root) if root is not None else list_file.parent
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        split = _split(line.strip())
        if split is None:
            raise AnnotationError(f"{list_file}:{number}: no integer label at the end of {line.strip()!r}; {FORMAT_HINT}")
        path, label = split
        if not path:
            raise AnnotationError(f"{list_file}:{number}: the video path is empty; {FORMAT_HINT}")
        if int(label) < 0:
            raise AnnotationError(f"{list_file}:{number}: label {label} is negative; label ids start at 0 (the line number in labels.txt)")
        video = Path(path)
        samples.append(Sample(video if video.is_absolute() else base / video, int(label)))
    if not samples:
        raise AnnotationError(f"{list_file}: no videos listed; {FORMAT_HINT}")
    return samples
