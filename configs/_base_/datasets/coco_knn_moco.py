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
# Named so that leaves change one step (e.g. the demo's blur) and inherit the rest.
color_jitter_step = dict(
    type='RandomApply',
    transforms=[
        dict(
            type='FastColorJitter',
            brightness=0.4,
            contrast=0.4,
            saturation=0.4,
            hue=0.1)
    ],
    prob=0.8)
grayscale_step = dict(type='FastRandomGrayscale', prob=0.2)
flip_step = dict(type='FastRandomFlip', prob=0.5)
view_transforms = [
    color_jitter_step,
    grayscale_step,
    dict(type='FastGaussianBlur', sigma=(0.1, 2.0), prob=0.5),  # sigma in px, for 224 px
    flip_step,
]
# A+'s other branch: flip + torchvision's AutoAugment (ImageNet policy), as the release.
auto_augment_transforms = [
    flip_step,
    dict(type='FastAutoAugment', policy='imagenet'),
]

# The pipeline's steps, named so that leaves restate only the step they change.
load_step = dict(type='StrictLoadImageFromFile')
crop_step = dict(
    type='ConstrainedMultiCrop',
    num_large=2,
    large_size=160,
    large_scale=(0.2, 1.0),
    num_small=4,
    small_size=96,
    small_scale=(0.05, 0.14),
    constrained=True,  # CC; False = plain multi-crop (MC)
    # The paper's rule (20% of each small crop inside the key, 50 tries). The release's
    # code, behind the paper's numbers: overlap_preset='release' (10% of the small crop's
    # target area, 10 tries; docs/transforms.md).
    min_overlap=0.2,
    backend='torch')  # antialiased like Pillow, faster
augment_step = dict(
    type='MultiCropViewAugment',
    a_plus=True,  # A+ on query and small crops; the key always gets view_transforms
    key_transforms=view_transforms,
    positive_transforms=view_transforms,
    auto_augment_transforms=auto_augment_transforms)
pack_step = dict(type='PackInputs')
train_pipeline = [load_step, crop_step, augment_step, pack_step]

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
