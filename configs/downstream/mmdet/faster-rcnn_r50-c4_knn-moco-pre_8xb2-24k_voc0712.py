# PASCAL VOC detection with the MoCo protocol many papers report (He et al., CVPR 2020): Faster
# R-CNN R50-C4 (./_base_/models/faster-rcnn_r50-c4_knn-moco.py: the res5 RoI head is
# pretrained too), every layer fine-tuned with synchronised BN. Data, schedule and metrics are
# those of faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py.
#
# Backbone and res5 head are read from the pretraining checkpoint as tools/train.py writes it
# (no conversion step; ../_base_/knn_moco_pretrained.py); another file goes to BOTH:
#   bash tools/dist_train.sh configs/downstream/mmdet/<this file> 8 --cfg-options \
#       model.backbone.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth \
#       model.roi_head.shared_head.init_cfg.checkpoint=work_dirs/knn_moco_coco/epoch_200.pth
_base_ = [
    './_base_/models/faster-rcnn_r50-c4_knn-moco.py',
    './_base_/datasets/voc0712.py',
    './_base_/schedules/sgd-steps_24k.py',
    './_base_/default_runtime.py',
]

model = dict(roi_head=dict(bbox_head=dict(num_classes=20)))
