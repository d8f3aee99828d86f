# The Faster R-CNN R50-DC5 recipe (../faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py) on
# the demo VOC tree (python tools/make_demo_data.py --out data/demo --formats voc) from the demo
# pretraining (configs/knn_moco_demo.py), for a CPU smoke run of the whole chain
# (docs/transfer.md, "Demo data and a CPU smoke run"). Only what differs from the recipe is set:
#   - the demo backbone: ResNet-18 at half width (32 stem / base channels), so the dilated C5
#     has 256 channels (RPN and RoI head inputs), read from the demo pretraining's checkpoint
#     (no conversion step);
#   - data: the demo tree's VOC2012 stands in for VOC07 + VOC12 (one training part, Main/
#     train.txt; Main/test.txt, the val images, for val / test);
#   - image scales for ~100-160 px demo images (the recipe: shorter side 480-800 px);
#   - 100 iterations at batch 4 on one process (lr 0.02 x 4 / 16), 10 warm-up iterations,
#     fewer proposals and sampled RoIs (the RoI head's CPU time: about 1 s per iteration on
#     2 cores), validation and a checkpoint at the end.
# The C4 recipe has no demo config: mmdet's ResLayer (its res5 RoI head) has no
# base_channels, so it cannot take the half-width demo backbone (docs/transfer.md).
#
#   python tools/train.py configs/downstream/mmdet/demo/<this file>
_base_ = ['../faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py']

pretrained_backbone = 'work_dirs/knn_moco_demo/epoch_40.pth'
data_root = 'data/demo/VOCdevkit/'
data_layout = """\
data/demo/VOCdevkit/VOC2012/   (python tools/make_demo_data.py --out data/demo --formats voc)
  JPEGImages/, Annotations/, ImageSets/Main/{train,test}.txt"""

model = dict(
    backbone=dict(
        depth=18,
        stem_channels=32,
        base_channels=32,
        init_cfg=dict(checkpoint=pretrained_backbone)),
    rpn_head=dict(in_channels=256, feat_channels=256),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=256),
        bbox_head=dict(in_channels=256)),
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomChoiceResize',
        scales=[(400, s) for s in range(96, 161, 32)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(400, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(datasets=[
        dict(
            type='VOCDataset',
            data_root=data_root,
            ann_file='VOC2012/ImageSets/Main/train.txt',
            data_prefix=dict(sub_data_root='VOC2012/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=train_pipeline)
    ]))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='VOC2012/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2012/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 100
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# the recipe's warm-up and steps, scaled to 100 iterations
_base_.param_scheduler[0].end = 10
_base_.param_scheduler[1].end = max_iters
_base_.param_scheduler[1].milestones = [75, 90]
optim_wrapper = dict(optimizer=dict(lr=0.005))
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_iters))
