# The segmentation model of arXiv 2106.05967 (appendix) on mmseg's FCN base: the pretrained
# plain-stem ResNet-50 at output stride 16 (last stage stride 1, dilation 2 in every block,
# as the paper's code dilates all 3x3 convolutions of layer4), SyncBN, every layer trained;
# head = two 3x3 conv-BN-ReLU of 256 channels with dilation 6 + classifier, no dropout and
# no auxiliary head. Leaves set num_classes and data_preprocessor.size (their crop).
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    '../../../_base_/knn_moco_pretrained.py',
]

model = dict(
    data_preprocessor=_base_.knn_moco_preprocessor,
    pretrained=None,
    backbone=dict(
        _base_.knn_moco_backbone,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        contract_dilation=False),
    decode_head=dict(
        channels=256,
        kernel_size=3,
        dilation=6,
        concat_input=False,
        dropout_ratio=0.0),
    auxiliary_head=None)
