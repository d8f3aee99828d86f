# Table 4, row 3: + CC, small crops re-drawn until >= 20% of their area lies in the key crop.
_base_ = ['./2_mc_coco.py']

train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='StrictLoadImageFromFile'),
    dict(type='ConstrainedMultiCrop', num_small=4, constrained=True, backend='torch'),
    dict(
        type='MultiCropViewAugment',
        a_plus=False,
        key_transforms={{_base_.view_transforms}},
        positive_transforms={{_base_.view_transforms}},
        auto_augment_transforms={{_base_.auto_augment_transforms}}),
    dict(type='PackInputs'),
]))
