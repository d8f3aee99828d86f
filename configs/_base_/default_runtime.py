# Runtime shared by all pretraining configs: mmpretrain's defaults plus our components.
_base_ = 'mmpretrain::_base_/default_runtime.py'

# Registers KNNMoCo, DualQueueHead, the transforms and dataset wrappers into mmpretrain's
# registries, and allow-lists our checkpoint types for torch's weights_only loading.
custom_imports = dict(imports=['revisit_ssl'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # atomic writes (temporary file + rename): a crash mid-save never leaves a partial
    # checkpoint under its final name
    checkpoint=dict(
        type='CheckpointHook',
        interval=10,
        max_keep_ckpts=3,
        backend_args=dict(backend='atomic_local')),
    # stops runs that would exit 0 and be wrong: empty epochs, NaN / inf losses, NaN
    # checkpoints; repairs last_checkpoint after a crash (revisit_ssl/engine/hooks)
    guard=dict(type='TrainingGuardHook'),
    # keeps KNNMoCo's NN loss out of the total for model.knn_warmup_epochs (or _iters), then
    # puts it in; here, not in custom_hooks, so a config that replaces custom_hooks keeps it
    knn_warmup=dict(type='KNNWarmupHook'),
    # seeds torch before every step from (seed, step, rank): shuffle-BN's permutation and
    # device augmentations are then the same after --resume as in an uninterrupted run
    step_seed=dict(type='StepSeedHook'))

# the logged losses and times are means over the last 10 iterations (mmengine's LogProcessor
# default, written out so that a leaf with few iterations per epoch can lower it). Whole
# batches for the queue come from drop_last=True in _base_/datasets/coco_knn_moco.py.
log_processor = dict(window_size=10)
