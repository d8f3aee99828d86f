# Faster R-CNN R50-dilated-C5 (Detectron2's R50-DC5, the detector of arXiv 2106.05967; mmdet's
# faster-rcnn_r50-caffe-dc5 base) with the pretrained ResNet-50 instead of the base's Caffe
# one: pytorch style, SyncBN, every layer fine-tuned, RGB ImageNet normalisation.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50-caffe-dc5.py',
    '../../../_base_/knn_moco_pretrained.py',
]

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=_base_.knn_moco_preprocessor,
    backbone=_base_.knn_moco_backbone)
