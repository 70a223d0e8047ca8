"""Video data pipeline: annotation lists, decoding, clip sampling, transforms, datasets."""
from vidpeft.data.annotations import AnnotationError, Sample, read_annotations
from vidpeft.data.config import DataConfig
from vidpeft.data.dataset import Batch, EpochSampler, VideoDataset, build_loader, collate
from vidpeft.data.decode import DECODERS, VideoReadError, VideoReader, open_video
from vidpeft.data.mixup import VideoMixup
from vidpeft.data.transforms import ClipNormalizer

__all__ = [
    "AnnotationError", "Batch", "ClipNormalizer", "DECODERS", "DataConfig", "EpochSampler", "Sample", "VideoDataset",
    "VideoMixup", "VideoReadError", "VideoReader", "build_loader", "collate", "open_video",
    "read_annotations",
]
