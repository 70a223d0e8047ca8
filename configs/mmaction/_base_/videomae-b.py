# VideoMAE ViT-B/16 from vidpeft with a PEFT method; mmaction2's TimeSformerHead classifies,
# as in its own VideoMAE configs (the backbone hands it pooled features shaped (N, C)).
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='vidpeft.PEFTBackbone',
        arch='videomae-b',
        method='full',  # set by each config
        method_cfg=dict(),
        out_format='NC',
        # the mmaction2 model-zoo K400 checkpoint; the official VideoMAE pre-training
        # checkpoint (V-PETL Bench's starting point) and transformers' ports load too
        pretrained='checkpoints/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400_'
        '20221013-860a3cd3.pth'),
    cls_head=dict(
        type='TimeSformerHead',
        in_channels=768,
        num_classes=174,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))
