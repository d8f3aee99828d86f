# NYUD-v2 40-class semantic segmentation from a kNN-MoCo ResNet-50, the recipe of
# arXiv 2106.05967 (appendix): DeepLab-v3 (ASPP) on an output-stride-16 backbone, 100 epochs at
# batch 8, Adam lr 1e-4 with poly decay, weight decay 1e-4; 795 train / 654 val images.
# Augmentation (not spelled out in the paper) follows the VOC recipe: random scale 0.5-2.0,
# crops of the full 480 x 640 frame, flip. Dataset: revisit_ssl.downstream.NYUDv2Dataset.
#
# The backbone is read from the pretraining checkpoint as tools/train.py writes it (no
# conversion step; ../_base_/knn_moco_pretrained.py):
#   bash tools/dist_train.sh configs/downstream/mmseg/<this file> 4 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
_base_ = [
    './_base_/models/deeplabv3_r50-d16_knn-moco.py',
    './_base_/default_runtime.py',
    './_base_/schedules/adam-poly_100e.py',
]

data_layout = """\
data/NYUDv2/
  images/<id>.jpg          RGB, 640 x 480
  segmentation/<id>.png    uint8: 0 unlabelled, 1..40 the 40 classes (Gupta et al. 2013)
  depth/<id>.png           uint16 millimetres, 0 = missing (depth config only)
  gt_sets/train.txt        795 ids
  gt_sets/val.txt          654 ids"""

dataset_type = 'NYUDv2Dataset'
data_root = 'data/NYUDv2'
crop_size = (480, 640)  # (h, w): the whole frame
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=40))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(640, 480),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # NYUD frames are 640 x 480 already: this only normalises other inputs
    dict(type='Resize', scale=(640, 480), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,  # x 4 GPUs = 8
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images', seg_map_path='segmentation'),
        ann_file='gt_sets/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images', seg_map_path='segmentation'),
        ann_file='gt_sets/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

auto_scale_lr = dict(base_batch_size=8)
