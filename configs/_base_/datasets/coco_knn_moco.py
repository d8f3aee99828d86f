# COCO train2017 (118K images, no labels) with the paper's views: 2 x 160 px crops (scale
# 0.2-1) and 4 x 96 px crops (scale 0.05-0.14) constrained to overlap the key crop (CC), the
# key with MoCo-v2's augmentations, query and small crops with A+.
data_root = 'data/coco'
data_layout = """\
data/coco/
  train2017/            # 118,287 COCO train2017 images (*.jpg), no annotations needed
    000000000009.jpg
    ..."""

train_pipeline = [
    dict(type='StrictLoadImageFromFile'),
    dict(
        type='ConstrainedMultiCrop',
        num_large=2,
        large_size=160,
        large_scale=(0.2, 1.0),
        num_small=4,
        small_size=96,
        small_scale=(0.05, 0.14),
        constrained=True,  # CC; False = plain multi-crop (MC)
        min_overlap=0.2),
    dict(type='MultiCropViewAugment', a_plus=True),  # A+ on query and small crops
    dict(type='PackInputs'),
]

# The release trained on 2 GPUs x 128 (global batch 256).
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    drop_last=True,  # the queue takes whole global batches
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),  # views of two sizes stay separate tensors
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train2017',
        with_label=False,
        pipeline=train_pipeline))
