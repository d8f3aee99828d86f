# What every downstream config (configs/downstream/{mmseg,mmdet}) takes from the kNN-MoCo
# pretraining of arXiv 2106.05967: its backbone, its input statistics, and the check that the
# weights arrived. The model bases of both families inherit this file and place the two
# dicts below with ``_base_.knn_moco_backbone`` / ``_base_.knn_moco_preprocessor``.
custom_imports = dict(
    imports=['revisit_ssl.downstream'], allow_failed_imports=False)

# The pretraining checkpoint exactly as tools/train.py writes it: no conversion step.
# mmengine's Pretrained init with prefix='backbone.' reads the online encoder's ResNet from
# it (as mmpretrain's benchmark configs do); tools/model_converters/extract_backbone.py is
# for torchvision / other projects' files and for choosing the momentum encoder, and writes
# the same 'backbone.' keys. Another file:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained_backbone = 'work_dirs/knn_moco_coco/epoch_200.pth'
knn_moco_backbone = dict(
    # our pretraining's ResNet has the plain 7x7 stem, not ResNetV1c's deep stem
    type='ResNet',
    depth=50,
    style='pytorch',  # stride in the 3x3 conv, like our (torchvision-style) ResNet
    frozen_stages=-1,  # all layers fine-tuned
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    norm_eval=False,
    init_cfg=dict(
        type='Pretrained', checkpoint=pretrained_backbone, prefix='backbone.'))
# mmseg / mmdet 3 normalise in the data preprocessor (an img_norm_cfg in the pipeline is
# ignored): the backbone was pretrained on RGB with the ImageNet mean / std
knn_moco_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)

# mmengine loads Pretrained inits non-strictly; this hook stops a run whose backbone did
# not receive every tensor of the file (revisit_ssl.downstream, docs/transfer.md)
custom_hooks = [dict(type='PretrainedInitCheckHook')]
