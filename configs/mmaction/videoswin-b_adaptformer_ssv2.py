_base_ = ['_base_/videoswin-b.py', '_base_/ssv2_vpetl.py', '_base_/runtime.py']

# AdaptFormer: a bottleneck (d -> 64 -> d, scale 0.1) beside every MLP
model = dict(backbone=dict(method='adaptformer', method_cfg=dict(adapter_dim=64, adapter_scale=0.1)))
