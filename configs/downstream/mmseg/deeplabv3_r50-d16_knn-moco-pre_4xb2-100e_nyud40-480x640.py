# NYUD-v2 40-class semantic segmentation from a kNN-MoCo ResNet-50, the recipe of
# arXiv 2106.05967 (appendix): DeepLab-v3 (ASPP) on an output-stride-16 backbone, 100 epochs at
# batch 8, Adam lr 1e-4 with poly decay, weight decay 1e-4; 795 train / 654 val images.
# Augmentation (not spelled out in the paper) follows the VOC recipe: random scale 0.5-2.0,
# crops of the full 480 x 640 frame, flip. Dataset: revisit_ssl.downstream.NYUDv2Dataset.
#
#   python tools/model_converters/extract_backbone.py PRETRAIN.pth \
#       checkpoints/knn-moco_r50_backbone.pth
#   bash tools/dist_train.sh configs/downstream/mmseg/<this file> 4
_base_ = [
    'mmseg::_base_/models/deeplabv3_r50-d8.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['revisit_ssl.downstream'], allow_failed_imports=False)

# Output of tools/model_converters/extract_backbone.py; override with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained_backbone = 'checkpoints/knn-moco_r50_backbone.pth'
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
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(
        # our pretraining backbone has the plain 7x7 stem, not ResNetV1c's deep stem
        type='ResNet',
        depth=50,
        # output stride 16: dilation 2 / stride 1 in the last stage, every block dilated
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        contract_dilation=False,
        style='pytorch',
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_backbone)),
    decode_head=dict(
        type='ASPPHead',
        in_channels=2048,
        in_index=3,
        channels=256,
        # DeepLab-v3's rates for output stride 16
        dilations=(1, 6, 12, 18),
        num_classes=40,
        norm_cfg=norm_cfg),
    auxiliary_head=None)

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
auto_scale_lr = dict(enable=False, base_batch_size=8)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=True, interval=10, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='PretrainedInitCheckHook')]
log_processor = dict(by_epoch=True)
