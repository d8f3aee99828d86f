# kNN-MoCo on COCO for 800 epochs: cosine over 800 epochs, the NN term waits 20 epochs.
_base_ = ['./knn_moco_coco.py']

model = dict(knn_warmup_epochs=20)
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=800, by_epoch=True, begin=0, end=800)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
