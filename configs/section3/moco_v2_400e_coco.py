# Section 3: MoCo-v2 (Table 4, row 1 recipe) pretrained for 400 epochs on COCO train2017.
# Layout: data/coco/train2017/*.jpg (see configs/_base_/datasets/coco_knn_moco.py).
# Also the shared base of the Section 3.1 IoU sweep (moco_v2_400e_coco_max_iou_*.py): the
# pipeline steps around the crop (load_step, augment_step, pack_step) are named in the bases
# so each leaf restates only its crop.
_base_ = ['../ablation/1_moco_v2_coco.py']

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=400, by_epoch=True, begin=0, end=400)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400)

# Every Section 3 dataset has as many images as COCO train2017.
coco_size = 118287
