"""What keeps a training step cheap without timing it: the residual stream's memory layout."""
from __future__ import annotations

import pytest
import torch

from vidpeft.backbones import BACKBONES, backbone_info, build_backbone
from vidpeft.methods import blocks


@pytest.mark.parametrize("name", BACKBONES.names())
def test_residual_stream_is_contiguous_into_every_block(name):
    """A block fed a strided stream pays a copy before each LayerNorm and strided residual adds, and
    passes the layout on to the next block (VideoMAE's stream kept the patch convolution's channel-major
    layout through all its blocks); shapes and strides on the meta device, at full size."""
    layouts = []
    with torch.device("meta"):
        model = build_backbone(name, 3).train()
        for block in blocks(model):
            block.register_forward_pre_hook(lambda _, args: layouts.append(args[0].is_contiguous()))
        info = backbone_info(name)
        model(torch.empty(1, 3, info.frames, info.input_size, info.input_size))
    assert layouts and all(layouts), layouts
