# Table 4, row 1: MoCo-v2 on COCO (200 epochs): 2 x 224 px crops (scale 0.2-1), MoCo-v2
# augmentations, momentum 0.999, no NN. KNNMoCo with NN off and no small crops is exactly
# mmpretrain's MoCo (tests/test_knn_moco.py checks it), so the ladder shares one model type.
_base_ = [
    '../_base_/models/knn_moco_r50.py',
    '../_base_/datasets/coco_knn_moco.py',
    '../_base_/schedules/sgd_coslr_200e.py',
    '../_base_/default_runtime.py',
]

model = dict(momentum=0.001, num_small_crops=0, head=dict(use_knn=False))
# MoCo-v2's views: every view gets view_transforms (no A+); rows 2, 3 and the Section 3 configs
# inherit this step
augment_step = dict(
    type='MultiCropViewAugment',
    a_plus=False,
    key_transforms={{_base_.view_transforms}},
    positive_transforms={{_base_.view_transforms}},
    auto_augment_transforms={{_base_.auto_augment_transforms}})
train_pipeline = [
    {{_base_.load_step}},
    dict(type='ConstrainedMultiCrop', large_size=224, num_small=0, backend='torch'),
    augment_step,
    {{_base_.pack_step}},
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
