# DeepLab-v3 of arXiv 2106.05967 (appendix, NYUD-v2): the backbone of
# ./fcn_r50-d16_knn-moco.py with an ASPP head of 256 channels at the rates for output
# stride 16 (mmseg's deeplabv3_r50-d8 base uses 512 channels and the stride-8 rates).
_base_ = './fcn_r50-d16_knn-moco.py'

model = dict(
    decode_head=dict(
        _delete_=True,
        type='ASPPHead',
        in_channels=2048,
        in_index=3,
        channels=256,
        dilations=(1, 6, 12, 18),
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
