# PASCAL VOC detection as the MoCo protocol and arXiv 2106.05967 evaluate it: VOC07 trainval +
# VOC12 trainval -> VOC07 test, train scale [480, 800] (shorter side, step 32), test 800;
# AP50 and the COCO-style AP (mean over IoU 0.50:0.95) and AP75, 11-point VOC07 AP.
_base_ = 'mmdet::_base_/datasets/voc0712.py'

data_layout = """\
data/VOCdevkit/
  VOC2007/{JPEGImages,Annotations}/, VOC2007/ImageSets/Main/{trainval,test}.txt
  VOC2012/{JPEGImages,Annotations}/, VOC2012/ImageSets/Main/trainval.txt"""

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
                ann_file=f'{year}/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root=f'{year}/'),
                filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=train_pipeline,
                backend_args=backend_args) for year in ('VOC2007', 'VOC2012')
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
