# mmdet's runtime with the hooks of the iteration-based detection schedule: a checkpoint every
# 6k iterations (the last two kept) and iteration-based logs.
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=6000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
