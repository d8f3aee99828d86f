# The Adam schedule of arXiv 2106.05967 (appendix) for Cityscapes and NYUD-v2: lr 1e-4,
# weight decay 1e-4, poly decay (power 0.9) stepped once per epoch as in the paper's code,
# 100 epochs with validation every 10. Cityscapes trains 150 (its leaf sets the end).
max_epochs = 100
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=1e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=max_epochs,
        by_epoch=True)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
