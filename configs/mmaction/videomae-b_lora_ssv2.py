_base_ = ['_base_/videomae-b.py', '_base_/ssv2_vpetl.py', '_base_/runtime.py']

# LoRA rank 16 on the query and value slices of every fused qkv projection
model = dict(backbone=dict(method='lora', method_cfg=dict(rank=16, alpha=16.0)))
