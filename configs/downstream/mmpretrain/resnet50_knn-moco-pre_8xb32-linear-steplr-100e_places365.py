# Places365 linear evaluation of a kNN-MoCo ResNet-50 (arXiv 2106.05967, Table 4): the ImageNet
# linear benchmark of ./resnet50_knn-moco-pre_8xb32-linear-steplr-100e_in1k.py (frozen
# backbone, linear classifier, SGD lr 30, 100 epochs, same augmentation) on Places365-Standard:
# 1.8 M training images of 365 scene classes -> the 36,500 validation images (100 a class).
#
# Data: mmpretrain's CustomDataset over the class-folder layout of Places365-Standard's "easy
# format" (places365standard_easyformat.tar); the class index of a folder is its position in
# the sorted folder names (train and val have the same 365 folders):
#   bash tools/dist_train.sh configs/downstream/mmpretrain/<this file> 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
_base_ = './resnet50_knn-moco-pre_8xb32-linear-steplr-100e_in1k.py'

data_root = 'data/places365'
data_layout = """\
data/places365/                 (places365standard_easyformat.tar: places365_standard/)
  train/<class>/*.jpg           365 class folders: airfield/, ..., zen_garden/
  val/<class>/*.jpg             the same 365 folders, 100 images each"""
dataset_type = 'CustomDataset'

model = dict(head=dict(num_classes=365))
data_preprocessor = dict(num_classes=365)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        with_label=True,
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        with_label=True,
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
