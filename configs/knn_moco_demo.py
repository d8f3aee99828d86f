# kNN-MoCo on the procedural demo data (tools/make_demo_data.py), sized for 2 CPU cores: the
# main recipe (CC, A+, m = 0.995, NN with k = 20, lambda = 0.4, lr 0.3 per 256 images) with
# what a few CPU minutes need changed:
#   - ResNet-18 at half width (32 stem / base channels, 256-d features): the random-init
#     features of a full-width net already separate the colour-coded demo classes well, and
#     the narrow net runs 600 iterations in about 3 minutes;
#   - 32 px large crops and 20 px small crops (the main recipe's 160 : 96 ratio);
#   - Gaussian-blur sigma scaled with the crop size: MoCo-v2's (0.1, 2.0) is meant for
#     224 px, and at 32 px it blurs the object away in half of the views;
#   - K = 256 (fewer keys than the 480 training images), 40 epochs of 15 iterations with
#     the NN loss switched on after 10, so the switch shows in the log.
# The kNN monitor prints the random-init baseline at epoch 0 and then rises (docs/evaluation.md).
#   make demo   (= python tools/train.py configs/knn_moco_demo.py --work-dir work_dirs/knn_moco_demo)
_base_ = ['./knn_moco_coco.py']

data_root = 'data/demo'
data_layout = 'data/demo/{train,val}/<class>/*.jpg: run `python tools/make_demo_data.py`'
large_size = 32
small_size = 20
max_epochs = 40

model = dict(
    knn_warmup_epochs=10,
    backbone=dict(depth=18, stem_channels=32, base_channels=32),
    neck=dict(in_channels=256, hid_channels=256),
    head=dict(queue_len=256, backbone_dim=256))

# The main recipe's view transforms with the blur scaled to the crops: (0.1, 2.0) x 32 / 224.
view_transforms = [
    {{_base_.color_jitter_step}},
    {{_base_.grayscale_step}},
    dict(type='FastGaussianBlur', sigma=(0.014, 0.29), prob=0.5),
    {{_base_.flip_step}},
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        data_prefix='train',
        pipeline=[
            {{_base_.load_step}},
            dict(
                type='ConstrainedMultiCrop',
                large_size=large_size,
                small_size=small_size,
                backend='torch'),
            dict(
                type='MultiCropViewAugment',
                a_plus=True,
                key_transforms=view_transforms,
                positive_transforms=view_transforms,
                auto_augment_transforms={{_base_.auto_augment_transforms}}),
            {{_base_.pack_step}},
        ]))

# lr: the recipe's 0.3 per 256 images, scaled by auto_scale_lr to 0.0375 for batch 32;
# cosine over the 40 epochs
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        begin=0,
        end=max_epochs)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=15), checkpoint=dict(interval=10, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # CPU processes for dist_train.sh
randomness = dict(seed=0)

# Online kNN monitor (weighted kNN, cosine, T=0.07) on the labelled demo split at the training
# crop size, every 5 epochs, with the random-init baseline at epoch 0.
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=large_size, edge='short'),
    dict(type='CenterCrop', crop_size=large_size),
    dict(type='PackInputs'),
]
# the monitor's two loaders differ only in the split
knn_loader = dict(
    batch_size=128,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False))
knn_dataset = dict(
    type='CustomDataset', data_root=data_root, pipeline=knn_pipeline)
custom_hooks = [
    dict(
        type='KNNMonitorHook',
        interval=5,
        topk=(20, 200),
        temperature=0.07,
        train_dataloader=dict(
            knn_loader,
            dataset=dict(knn_dataset, data_prefix='train')),
        val_dataloader=dict(
            knn_loader, dataset=dict(knn_dataset, data_prefix='val'))),
]
