# Table 4, row 3: + CC, small crops re-drawn until >= 20% of their area lies in the key crop.
_base_ = ['./2_mc_coco.py']

train_dataloader = dict(dataset=dict(pipeline=[
    {{_base_.load_step}},
    dict(type='ConstrainedMultiCrop', num_small=4, constrained=True, backend='torch'),
    {{_base_.augment_step}},
    {{_base_.pack_step}},
]))
