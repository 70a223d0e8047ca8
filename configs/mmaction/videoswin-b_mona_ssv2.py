_base_ = ['_base_/videoswin-b.py', '_base_/ssv2_vpetl.py', '_base_/runtime.py']

# Mona: scaled LayerNorm -> Linear(d, 64) -> 3x3/5x5/7x7 depthwise filters -> 1x1 -> GELU -> Linear(64, d),
# after attention and after the MLP of every block; mona_conv='3d' gives (3, k, k) kernels (Mona-3D)
model = dict(backbone=dict(method='mona', method_cfg=dict(mona_dim=64, mona_conv='2d')))
