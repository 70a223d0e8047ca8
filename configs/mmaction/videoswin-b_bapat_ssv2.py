_base_ = ['_base_/videoswin-b.py', '_base_/ssv2_vpetl.py', '_base_/runtime.py']

# BAPAT: AdaptFormer beside every MLP + parallel attention on K and V (V-PETL's settings)
model = dict(backbone=dict(
    method='bapat',
    method_cfg=dict(adapter_dim=64, adapter_scale=0.1, patt_dim=128, patt_scale=0.8)))
