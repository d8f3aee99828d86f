# Cityscapes semantic segmentation from a kNN-MoCo ResNet-50, the recipe of arXiv 2106.05967
# (appendix): the VOC FCN (output stride 16) with head dilation 1, 150 epochs at batch 16,
# Adam lr 1e-4 with poly decay, weight decay 1e-4, random scale 0.5-2.0 + 768 x 768 crops +
# flip; train_fine (2,975) -> val (500) at full resolution.
#
# The backbone is read from the pretraining checkpoint as tools/train.py writes it (no
# conversion step; ../_base_/knn_moco_pretrained.py):
#   bash tools/dist_train.sh configs/downstream/mmseg/<this file> 4 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
_base_ = [
    './_base_/models/fcn_r50-d16_knn-moco.py',
    'mmseg::_base_/datasets/cityscapes.py',
    './_base_/default_runtime.py',
    './_base_/schedules/adam-poly_100e.py',
]

data_layout = """\
data/cityscapes/
  leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
      (mmseg tools/dataset_converters/cityscapes.py writes the *_labelTrainIds.png)"""

crop_size = (768, 768)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(dilation=1, num_classes=19))

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
train_cfg = dict(max_epochs=max_epochs)
_base_.param_scheduler[0].end = max_epochs
