# NYUD-v2 depth estimation from a kNN-MoCo ResNet-50 (arXiv 2106.05967, appendix): the NYUD
# segmentation model (DeepLab-v3 / ASPP, output stride 16) with a one-channel depth output,
# MSE loss on valid pixels, RMSE (and the usual depth metrics) on val; 100 epochs at batch 8,
# Adam lr 1e-4 poly, weight decay 1e-4. Runs on mmseg's depth-estimation support
# (DepthEstimator, LoadDepthAnnotation, DepthMetric) with revisit_ssl.downstream's
# ASPPDepthHead / DepthMSELoss / NYUDv2DepthDataset.
#
# Augmentation is flip + crop only: mmseg's depth-aware Resize keeps depth values, so random
# scaling would pair zoomed images with unchanged (wrong) distances.
_base_ = './deeplabv3_r50-d16_knn-moco-pre_4xb2-100e_nyud40-480x640.py'

dataset_type = 'NYUDv2DepthDataset'
model = dict(
    type='DepthEstimator',
    # the segmentation model's ASPP head with one output channel and a depth loss
    decode_head=dict(
        type='ASPPDepthHead',
        num_classes=1,
        min_depth=1e-3,
        max_depth=10.0,
        loss_decode=dict(
            _delete_=True, type='DepthMSELoss', min_depth=1e-3,
            max_depth=10.0)))

meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),  # mm -> m
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_prefix=dict(
            _delete_=True, img_path='images', depth_map_path='depth'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_prefix=dict(
            _delete_=True, img_path='images', depth_map_path='depth'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# 'nyu_crop' evaluates the usual Eigen et al. crop of the 640 x 480 frame
val_evaluator = dict(
    _delete_=True,
    type='DepthMetric',
    min_depth_eval=1e-3,
    max_depth_eval=10.0,
    crop_type='nyu_crop')
test_evaluator = val_evaluator
