# Video Swin-B from vidpeft with a PEFT method; mmaction2's I3DHead classifies, as in its
# own Swin configs (the backbone hands it pooled features shaped (N, C, 1, 1, 1)).
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='vidpeft.PEFTBackbone',
        arch='videoswin-b',
        method='full',  # set by each config
        method_cfg=dict(),
        backbone_cfg=dict(drop_path_rate=0.4),
        # the mmaction2 model-zoo K400 checkpoint; the official Video Swin release and
        # torchvision's swin3d_b weights load too (the format is recognised by its keys)
        pretrained='checkpoints/swin-base-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_'
        'kinetics400-rgb_20220930-182ec6cc.pth'),
    cls_head=dict(
        type='I3DHead',
        in_channels=1024,
        num_classes=174,
        spatial_type='avg',
        dropout_ratio=0.5,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))
