_base_ = ['_base_/videoswin-b.py', '_base_/ssv2_vpetl.py', '_base_/runtime.py']

# ST-Adapter: Linear(d, d/2) -> depthwise Conv3d (3, 1, 1) over neighbouring frames -> Linear(d/2, d), before
# every block's attention, zero-initialised (st_dim=0: half of each block's width, 384 on ViT-B)
model = dict(backbone=dict(method='st-adapter', method_cfg=dict(st_dim=0, st_positions=('attn',))))
