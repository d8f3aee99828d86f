# PASCAL VOC detection from a kNN-MoCo ResNet-50, the setting of arXiv 2106.05967: Faster R-CNN
# R50-dilated-C5 (./_base_/models/faster-rcnn_r50-dc5_knn-moco.py), all layers fine-tuned with
# synchronised BN, VOC07 trainval + VOC12 trainval -> VOC07 test (./_base_/datasets/voc0712.py),
# the MoCo Detectron2 VOC schedule, 24k iterations at batch 16 (./_base_/schedules/).
#
# The backbone is read from the pretraining checkpoint as tools/train.py writes it (no
# conversion step; ../_base_/knn_moco_pretrained.py):
#   bash tools/dist_train.sh configs/downstream/mmdet/<this file> 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
_base_ = [
    './_base_/models/faster-rcnn_r50-dc5_knn-moco.py',
    './_base_/datasets/voc0712.py',
    './_base_/schedules/sgd-steps_24k.py',
    './_base_/default_runtime.py',
]

model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
