"""vidpeft inside mmaction2: `vidpeft.PEFTBackbone`, `vidpeft.PEFTCheckpointHook` and
`vidpeft.VideoListDataset` (vidpeft-prep's lists, any file name).

In an mmaction2 config:

    custom_imports = dict(imports=["vidpeft.mmaction"], allow_failed_imports=False)
    model = dict(type="Recognizer3D",
                 backbone=dict(type="vidpeft.PEFTBackbone", arch="videoswin-b", method="bapat",
                               pretrained="swin_base_patch244_window877_kinetics400_22k.pth"),
                 cls_head=dict(type="I3DHead", in_channels=1024, num_classes=174), ...)
    custom_hooks = [dict(type="vidpeft.PEFTCheckpointHook")]

Importing this module also applies the fixes mmaction2 1.2.0 needs on a current PyTorch
(see `compat`). It needs the extra: pip install "vidpeft[mmaction]".
"""
try:
    import mmaction  # noqa: F401
    import mmengine  # noqa: F401
except ImportError as err:
    raise ImportError(f"vidpeft.mmaction needs mmaction2 ({err}); install it with: pip install 'vidpeft[mmaction]'") from None

from . import compat

compat.apply()

from .backbone import PEFTBackbone  # noqa: E402  (after the fixes: registration imports mmaction)
from .dataset import VideoListDataset  # noqa: E402
from .hooks import PEFTCheckpointHook  # noqa: E402

__all__ = ["PEFTBackbone", "PEFTCheckpointHook", "VideoListDataset"]
