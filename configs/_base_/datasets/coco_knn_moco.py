# COCO train2017 (118K images, no labels) with the paper's views: 2 x 160 px crops (scale
# 0.2-1) and 4 x 96 px crops (scale 0.05-0.14) constrained to overlap the key crop (CC), the
# key with MoCo-v2's augmentations, query and small crops with A+.
data_root = 'data/coco'
data_layout = """\
data/coco/
  train2017/            # 118,287 COCO train2017 images (*.jpg), no annotations needed
    000000000009.jpg
    ..."""

# MoCo-v2's augmentations of one view, the release's torchvision ops (ColorJitter,
# RandomGrayscale, PIL GaussianBlur, RandomHorizontalFlip) computed in uint8 on the crops'
# arrays (revisit_ssl/datasets/transforms/fast_view_transforms.py; docs/transforms.md).
view_transforms = [
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='FastColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.4,
                hue=0.1)
        ],
        prob=0.8),
    dict(type='FastRandomGrayscale', prob=0.2),
    dict(type='FastGaussianBlur', sigma=(0.1, 2.0), prob=0.5),  # sigma in px, for 224 px
    dict(type='FastRandomFlip', prob=0.5),
]
# A+'s other branch: flip + torchvision's AutoAugment (ImageNet policy), as the release.
auto_augment_transforms = [
    dict(type='FastRandomFlip', prob=0.5),
    dict(type='FastAutoAugment', policy='imagenet'),
]

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
        min_overlap=0.2,
        backend='torch'),  # antialiased like Pillow, faster
    dict(
        type='MultiCropViewAugment',
        a_plus=True,  # A+ on query and small crops; the key always gets view_transforms
        key_transforms=view_transforms,
        positive_transforms=view_transforms,
        auto_augment_transforms=auto_augment_transforms),
    dict(type='PackInputs'),
]

# The release trained on 2 GPUs x 128 (global batch 256).
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    drop_last=True,  # the queue takes whole global batches
    persistent_workers=True,
    sampler=dict(type='PerSampleSeedSampler', shuffle=True),  # views from (seed, epoch, index)
    collate_fn=dict(type='default_collate'),  # views of two sizes stay separate tensors
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train2017',
        with_label=False,
        pipeline=train_pipeline))
