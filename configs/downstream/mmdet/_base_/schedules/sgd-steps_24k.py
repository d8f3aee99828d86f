# The Detectron2 VOC schedule of MoCo that arXiv 2106.05967 follows: 24k iterations at batch
# 16, SGD momentum 0.9, lr 0.02 x0.1 at 18k / 22k, 100 warm-up iterations, weight decay 1e-4
# (none on norm layers); validation every 6k iterations.
max_iters = 24000
train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=6000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[18000, 22000],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    # Detectron2 (SOLVER.WEIGHT_DECAY_NORM = 0): no weight decay on norm layers
    paramwise_cfg=dict(norm_decay_mult=0.0))
auto_scale_lr = dict(enable=False, base_batch_size=16)
