# kNN-MoCo on the procedural demo data (tools/make_demo_data.py), sized for 2 CPU cores:
# the main recipe with ResNet-18, 64 + 32 px crops, K = 1024 and 4 epochs, NN switched on after
# 1 warm-up epoch so the switch shows in the log.
#   make demo   (= python tools/train.py configs/knn_moco_demo.py --work-dir work_dirs/knn_moco_demo)
_base_ = ['./knn_moco_coco.py']

data_root = 'data/demo'
data_layout = 'data/demo/{train,val}/<class>/*.jpg: run `python tools/make_demo_data.py`'

model = dict(
    knn_warmup_epochs=1,
    backbone=dict(depth=18),
    neck=dict(in_channels=512, hid_channels=512),
    head=dict(queue_len=1024, backbone_dim=512))

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        data_prefix='train',
        pipeline=[
            dict(type='StrictLoadImageFromFile'),
            dict(type='ConstrainedMultiCrop', large_size=64, small_size=32),
            dict(type='MultiCropViewAugment', a_plus=True),
            dict(type='PackInputs'),
        ]))

# lr 0.3 x 32 / 256, cosine over the 4 epochs
optim_wrapper = dict(optimizer=dict(lr=0.0375))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=4, by_epoch=True, begin=0, end=4)
]
train_cfg = dict(max_epochs=4)
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # CPU processes for dist_train.sh
randomness = dict(seed=0)

# Online kNN monitor (weighted kNN, cosine, T=0.07) on the labelled demo split, every epoch,
# with the random-init baseline at epoch 0.
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=64, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
custom_hooks = [
    dict(
        type='KNNMonitorHook',
        interval=1,
        topk=(20, 200),
        temperature=0.07,
        train_dataloader=dict(
            batch_size=128,
            num_workers=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                type='CustomDataset',
                data_root=data_root,
                data_prefix='train',
                pipeline=knn_pipeline)),
        val_dataloader=dict(
            batch_size=128,
            num_workers=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                type='CustomDataset',
                data_root=data_root,
                data_prefix='val',
                pipeline=knn_pipeline))),
]
