# MoCo-v2 on COCO for 800 epochs, the release's baseline script (scripts/moco_coco_800ep.sh):
# Table 4 row 1's recipe (2 x 224 px, m = 0.999, no NN, lr 0.3 per 256 images) with the
# cosine over 800 epochs; the baseline of the 800-epoch kNN-MoCo (knn_moco_coco_800e.py).
_base_ = ['./1_moco_v2_coco.py']

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=800, by_epoch=True, begin=0, end=800)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
