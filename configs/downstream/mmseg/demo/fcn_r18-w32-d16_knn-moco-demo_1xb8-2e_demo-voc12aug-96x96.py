# The VOC FCN recipe (../fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py) on the demo VOC
# tree (python tools/make_demo_data.py --out data/demo --formats voc) from the demo pretraining
# (configs/knn_moco_demo.py), for a CPU smoke run of the whole chain (docs/transfer.md, "Demo
# data and a CPU smoke run"). Only what differs from the recipe is set here:
#   - the demo backbone: ResNet-18 at half width (32 stem / base channels), so the last stage
#     has 256 channels, and its converted checkpoint;
#   - data/demo/VOCdevkit/VOC2012 for the train_aug concatenation and val;
#   - 96 x 96 crops of the ~100-160 px demo images (the recipe: 512 x 512 of ~500 px photos);
#   - 2 epochs at batch 8 on one process, validation and a checkpoint after each epoch.
# The model, loss, optimiser and augmentation types are the recipe's.
#
#   python tools/model_converters/extract_backbone.py work_dirs/knn_moco_demo/epoch_40.pth \
#       checkpoints/knn-moco_r18_demo_backbone.pth
#   python tools/train.py configs/downstream/mmseg/demo/<this file>
_base_ = ['../fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py']

pretrained_backbone = 'checkpoints/knn-moco_r18_demo_backbone.pth'
data_root = 'data/demo/VOCdevkit/VOC2012'
data_layout = """\
data/demo/VOCdevkit/VOC2012/   (python tools/make_demo_data.py --out data/demo --formats voc)
  JPEGImages/, SegmentationClass/, SegmentationClassAug/,
  ImageSets/Segmentation/{train,aug,val}.txt"""
crop_size = (96, 96)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        depth=18,
        stem_channels=32,
        base_channels=32,
        init_cfg=dict(checkpoint=pretrained_backbone)),
    decode_head=dict(in_channels=256))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(512, 128),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(datasets=[
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
                img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
            ann_file='ImageSets/Segmentation/aug.txt',
            pipeline=train_pipeline),
    ]))
val_dataloader = dict(
    num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=1))
