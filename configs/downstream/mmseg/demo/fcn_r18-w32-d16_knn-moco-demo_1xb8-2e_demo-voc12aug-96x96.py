# The VOC FCN recipe (../fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py) on the demo VOC
# tree (python tools/make_demo_data.py --out data/demo --formats voc) from the demo pretraining
# (configs/knn_moco_demo.py), for a CPU smoke run of the whole chain (docs/transfer.md, "Demo
# data and a CPU smoke run"). Only what differs from the recipe is set here:
#   - the demo backbone: ResNet-18 at half width (32 stem / base channels), so the last stage
#     has 256 channels, read from the demo pretraining's checkpoint (no conversion step);
#   - data/demo/VOCdevkit/VOC2012 for the train_aug concatenation and val;
#   - 96 x 96 crops of the ~100-160 px demo images (the recipe: 512 x 512 of ~500 px photos);
#   - 2 epochs at batch 8 on one process, validation and a checkpoint after each epoch.
# The model, loss, optimiser and augmentation types are the recipe's.
#
#   python tools/train.py configs/downstream/mmseg/demo/<this file>
_base_ = ['../fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py']

pretrained_backbone = 'work_dirs/knn_moco_demo/epoch_40.pth'
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

# the recipe's training pipeline at the demo's image sizes (tests/
# test_downstream_config_bases.py checks that only sizes, paths and schedule differ)
train_pipeline = _base_.train_pipeline
train_pipeline[2].scale = (512, 128)  # RandomResize
train_pipeline[3].crop_size = crop_size  # RandomCrop
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    # the recipe's two train_aug parts (VOC train + SBD extras) on the demo tree
    dataset=dict(datasets=[
        dict(part, data_root=data_root, pipeline=train_pipeline)
        for part in _base_.train_dataloader.dataset.datasets
    ]))
val_dataloader = dict(
    num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=1))
