"""`vidpeft.VideoListDataset`: mmaction2's VideoDataset reading the lists vidpeft-prep writes."""
from __future__ import annotations

from mmaction.datasets import VideoDataset

from ..data.annotations import read_annotations
from .registry import DATASETS


@DATASETS.register_module()
class VideoListDataset(VideoDataset):
    """mmaction2's VideoDataset (its pipeline, metrics and test modes unchanged) with vidpeft's list
    reader: `<path> <label>` split at the last whitespace (or `<path>,<label>`), so a file name may hold
    spaces, where mmaction2 splits the line on every space. Paths are relative to `data_prefix.video`."""

    def load_data_list(self) -> list[dict]:
        samples = read_annotations(self.ann_file, self.data_prefix.get("video") or "")
        return [dict(filename=str(sample.path), label=sample.label) for sample in samples]
