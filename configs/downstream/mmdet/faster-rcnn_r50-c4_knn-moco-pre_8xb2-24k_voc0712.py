# PASCAL VOC detection with the MoCo protocol many papers report (He et al., CVPR 2020): Faster
# R-CNN R50-C4, every layer fine-tuned with synchronised BN (backbone and the res5 RoI head),
# VOC07 trainval + VOC12 trainval -> VOC07 test, train scale [480, 800] (shorter side, step
# 32), test 800, 24k iterations at batch 16, lr 0.02 x0.1 at 18k / 22k, 100 warm-up
# iterations, weight decay 1e-4 (none on norm layers). Data, schedule and metrics are those of
# faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py; the model is mmdet's
# faster-rcnn_r50-caffe-c4 base with our backbone.
#
# The C4 RoI head (``roi_head.shared_head``, the res5 stage) is pretrained too: it loads the
# converted checkpoint's ``layer4.*`` instead of the base config's open-mmlab:// Caffe weights
# (the backbone, 3 stages here, skips those keys). Override BOTH paths when you move the file:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH \
#                 model.roi_head.shared_head.init_cfg.checkpoint=PATH
# MoCo's Detectron2 head (Res5ROIHeadsExtraNorm) adds one more BN after res5; mmdet's
# ResLayer has none, so the head is the standard C4 one.
#
#   python tools/model_converters/extract_backbone.py PRETRAIN.pth \
#       checkpoints/knn-moco_r50_backbone.pth
#   bash tools/dist_train.sh configs/downstream/mmdet/<this file> 8
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50-caffe-c4.py',
    'mmdet::_base_/datasets/voc0712.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['revisit_ssl.downstream'], allow_failed_imports=False)

# Output of tools/model_converters/extract_backbone.py (see above for overriding it)
pretrained_backbone = 'checkpoints/knn-moco_r50_backbone.pth'
data_layout = """\
data/VOCdevkit/
  VOC2007/{JPEGImages,Annotations}/, VOC2007/ImageSets/Main/{trainval,test}.txt
  VOC2012/{JPEGImages,Annotations}/, VOC2012/ImageSets/Main/trainval.txt"""

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # mmdet 3 normalises in the data preprocessor (an img_norm_cfg in the pipeline is
    # ignored): our backbone was pretrained on RGB with the ImageNet mean / std
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        frozen_stages=-1,  # all layers fine-tuned
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',  # stride in the 3x3 conv, like our (torchvision-style) ResNet
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_backbone)),
    roi_head=dict(
        shared_head=dict(
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch',
            init_cfg=dict(type='Pretrained', checkpoint=pretrained_backbone)),
        bbox_head=dict(num_classes=20)))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, s) for s in range(480, 801, 32)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
data_root = 'data/VOCdevkit/'
train_dataloader = dict(
    batch_size=2,  # x 8 GPUs = 16
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # VOCDataset tags its metainfo with the year; the two parts differ only there
        ignore_keys=['dataset_type'],
        datasets=[
            dict(
                type='VOCDataset',
                data_root=data_root,
                ann_file='VOC2007/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2007/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args),
            dict(
                type='VOCDataset',
                data_root=data_root,
                ann_file='VOC2012/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root='VOC2012/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args)
        ]))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='VOCMetric',
    metric='mAP',
    eval_mode='11points',
    # 'mAP' is the mean over these (COCO-style AP); AP50 / AP75 are logged per threshold
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator

max_iters = 24000
train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=6000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[18000, 22000],
        gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    # Detectron2 (SOLVER.WEIGHT_DECAY_NORM = 0): no weight decay on norm layers
    paramwise_cfg=dict(norm_decay_mult=0.0))
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=6000, max_keep_ckpts=2))
custom_hooks = [dict(type='PretrainedInitCheckHook')]
log_processor = dict(by_epoch=False)
