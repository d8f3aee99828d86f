# PASCAL VOC 2012 semantic segmentation from a kNN-MoCo ResNet-50, the fine-tuning recipe of
# arXiv 2106.05967 (appendix): FCN, output stride 16 (./_base_/models/fcn_r50-d16_knn-moco.py),
# 45 epochs at batch 16, SGD momentum 0.9, lr 0.003 x0.1 after 30 and 40 epochs, weight decay
# 1e-4, random scale 0.5-2.0 + flip. train_aug (10,582 = VOC train 1,464 + SBD extras), val
# 1,449.
#
# The backbone is read from the pretraining checkpoint as tools/train.py writes it (no
# conversion step; ../_base_/knn_moco_pretrained.py):
#   bash tools/dist_train.sh configs/downstream/mmseg/<this file> 4 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
_base_ = [
    './_base_/models/fcn_r50-d16_knn-moco.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    './_base_/default_runtime.py',
]

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
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=21))

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
default_hooks = dict(checkpoint=dict(interval=5))
