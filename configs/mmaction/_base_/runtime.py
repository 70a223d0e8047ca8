# mmaction2 1.2.0's configs/_base_/default_runtime.py, plus what the vidpeft plug-in needs.
# (Self-contained rather than `_base_ = 'mmaction::_base_/default_runtime.py'`: mmengine 0.10
# resolves `mmaction::` paths with pkg_resources, which setuptools >= 81 no longer ships.)
default_scope = 'mmaction'
custom_imports = dict(imports=['vidpeft.mmaction'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto', max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))
# checkpoints hold only the trainable tensors (method + head); the frozen backbone comes
# from `pretrained` when they are loaded
custom_hooks = [dict(type='vidpeft.PEFTCheckpointHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
