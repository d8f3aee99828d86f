# ImageNet linear evaluation of a kNN-MoCo ResNet-50 (arXiv 2106.05967, Table 4): mmpretrain's
# MoCo-v2 linear benchmark unchanged, i.e. the frozen backbone (frozen_stages=4, BN statistics
# frozen too) + global average pooling + a linear classifier, SGD momentum 0.9, lr 30, no
# weight decay, x0.1 at epochs 60 and 80, 100 epochs at batch 256 (8 x 32); random resized
# 224 crops + flip, test on the 224 centre crop of the 256-px resize; top-1 / top-5.
#
# The backbone is read from the pretraining checkpoint as tools/train.py writes it (no
# conversion step), through prefix='backbone.' like every mmpretrain benchmark:
#   bash tools/dist_train.sh configs/downstream/mmpretrain/<this file> 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
# mmpretrain's own launcher takes the same file and options (mim train mmpretrain ...).
_base_ = 'mmpretrain::mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py'
custom_imports = dict(
    imports=['revisit_ssl.downstream'], allow_failed_imports=False)

pretrained_backbone = 'work_dirs/knn_moco_coco/epoch_200.pth'
data_layout = """\
data/imagenet/
  train/n01440764/*.JPEG ...    1,000 class folders
  val/*.JPEG                    50,000 images
  meta/{train,val}.txt          '<relative path> <class index>' lines (mmpretrain's ImageNet)"""

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint=pretrained_backbone,
            prefix='backbone.')))

# the benchmark's total batch (8 x 32), so that --auto-scale-lr scales lr 30 to other batches
auto_scale_lr = dict(enable=False, base_batch_size=256)

# mmengine loads Pretrained inits non-strictly; stop a run whose backbone missed a tensor
custom_hooks = [dict(type='PretrainedInitCheckHook')]
