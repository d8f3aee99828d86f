# mmseg's runtime with the hooks of the epoch-based downstream recipes: a checkpoint every 10
# epochs (the last two kept) and epoch-based logs.
_base_ = 'mmseg::_base_/default_runtime.py'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=True, interval=10, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
# each recipe sets base_batch_size to its total batch (--auto-scale-lr turns it on)
auto_scale_lr = dict(enable=False, base_batch_size=16)
