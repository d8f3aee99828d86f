# PASCAL VOC 2012 semantic segmentation from a kNN-MoCo ResNet-50, the fine-tuning recipe of
# arXiv 2106.05967 (appendix): FCN, output stride 16 (last stage dilation 2, stride 1), head =
# two 3x3 conv-BN-ReLU of 256 channels with dilation 6 + classifier, 45 epochs at batch 16,
# SGD momentum 0.9, lr 0.003 x0.1 after 30 and 40 epochs, weight decay 1e-4, random scale
# 0.5-2.0 + flip. train_aug (10,582 = VOC train 1,464 + SBD extras), val 1,449.
#
#   python tools/model_converters/extract_backbone.py PRETRAIN.pth \
#       checkpoints/knn-moco_r50_backbone.pth
#   bash tools/dist_train.sh configs/downstream/mmseg/<this file> 4
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['revisit_ssl.downstream'], allow_failed_imports=False)

# Output of tools/model_converters/extract_backbone.py; override with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained_backbone = 'checkpoints/knn-moco_r50_backbone.pth'
data_layout = """\
data/VOCdevkit/VOC2012/
  JPEGImages/<id>.jpg
  SegmentationClass/<id>.png        VOC palette PNGs (train + val)
  SegmentationClassAug/<id>.png     SBD labels as index PNGs
                                    (mmseg tools/dataset_converters/voc_aug.py)
  ImageSets/Segmentation/train.txt  1,464 ids
  ImageSets/Segmentation/aug.txt    9,118 SBD ids not in train / val (voc_aug.py)
  ImageSets/Segmentation/val.txt    1,449 ids"""

crop_size = (512, 512)
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
        type='FCNHead',
        in_channels=2048,
        in_index=3,
        channels=256,
        num_convs=2,
        kernel_size=3,
        dilation=6,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=21,
        norm_cfg=norm_cfg),
    # the paper's FCN has no auxiliary head
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
data_root = 'data/VOCdevkit/VOC2012'
train_dataloader = dict(
    batch_size=4,  # x 4 GPUs = 16
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset',
        # VOC train with its own labels + the SBD extras = train_aug (10,582)
        datasets=[
            dict(
                type='PascalVOCDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path='JPEGImages', seg_map_path='SegmentationClass'),
                ann_file='ImageSets/Segmentation/train.txt',
                pipeline=train_pipeline),
            dict(
                type='PascalVOCDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path='JPEGImages',
                    seg_map_path='SegmentationClassAug'),
                ann_file='ImageSets/Segmentation/aug.txt',
                pipeline=train_pipeline),
        ]))
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

max_epochs = 45
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.003, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[30, 40],
        gamma=0.1)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=True, interval=5, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [dict(type='PretrainedInitCheckHook')]
log_processor = dict(by_epoch=True)
