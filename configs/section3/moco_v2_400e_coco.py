# Section 3: MoCo-v2 (Table 4, row 1 recipe) pretrained for 400 epochs on COCO train2017.
# Layout: data/coco/train2017/*.jpg (see configs/_base_/datasets/coco_knn_moco.py).
_base_ = ['../ablation/1_moco_v2_coco.py']

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=400, by_epoch=True, begin=0, end=400)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400)
