# Table 4, row 5: + A+, query and small crops get AutoAugment (ImageNet policy) half the time.
_base_ = ['./4_m_coco.py']

train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='StrictLoadImageFromFile'),
    dict(type='ConstrainedMultiCrop', num_small=4, constrained=True, backend='torch'),
    dict(
        type='MultiCropViewAugment',
        a_plus=True,
        key_transforms={{_base_.view_transforms}},
        positive_transforms={{_base_.view_transforms}},
        auto_augment_transforms={{_base_.auto_augment_transforms}}),
    dict(type='PackInputs'),
]))
