# Cityscapes semantic segmentation from a kNN-MoCo ResNet-50, the recipe of arXiv 2106.05967
# (appendix): the VOC FCN (output stride 16) with head dilation 1, 150 epochs at batch 16,
# Adam lr 1e-4 with poly decay, weight decay 1e-4, random scale 0.5-2.0 + 768 x 768 crops +
# flip; train_fine (2,975) -> val (500) at full resolution.
#
#   python tools/model_converters/extract_backbone.py PRETRAIN.pth \
#       checkpoints/knn-moco_r50_backbone.pth
#   bash tools/dist_train.sh configs/downstream/mmseg/<this file> 4
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['revisit_ssl.downstream'], allow_failed_imports=False)

# Output of tools/model_converters/extract_backbone.py; override with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained_backbone = 'checkpoints/knn-moco_r50_backbone.pth'
data_layout = """\
data/cityscapes/
  leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
      (mmseg tools/dataset_converters/cityscapes.py writes the *_labelTrainIds.png)"""

crop_size = (768, 768)
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
        dilation=1,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=19,
        norm_cfg=norm_cfg),
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 1024),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,  # x 4 GPUs = 16
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

max_epochs = 150
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, weight_decay=1e-4))
# poly decay (power 0.9) stepped once per epoch, as in the paper's code
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
auto_scale_lr = dict(enable=False, base_batch_size=16)

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
