# Faster R-CNN R50-C4 (the MoCo VOC protocol, He et al., CVPR 2020; mmdet's
# faster-rcnn_r50-caffe-c4 base) with the pretrained ResNet-50: 3 stages in the backbone, the
# res5 stage as the RoI head (``roi_head.shared_head``, mmdet's ResLayer), pretrained too: it
# reads the checkpoint's layer4 through the same prefix='backbone.' (the backbone skips
# those keys) instead of the base's open-mmlab:// Caffe weights. Override BOTH paths:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH \
#                 model.roi_head.shared_head.init_cfg.checkpoint=PATH
# MoCo's Detectron2 head (Res5ROIHeadsExtraNorm) adds one more BN after res5; mmdet's
# ResLayer has none, so the head is the standard C4 one.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50-caffe-c4.py',
    '../../../_base_/knn_moco_pretrained.py',
]

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=_base_.knn_moco_preprocessor,
    backbone=_base_.knn_moco_backbone,
    roi_head=dict(
        shared_head=dict(
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch',
            init_cfg=_base_.knn_moco_backbone.init_cfg)))
