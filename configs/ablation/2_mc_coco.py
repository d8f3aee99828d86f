# Table 4, row 2: + MC, plain multi-crop: 2 x 160 px + 4 x 96 px small crops (extra queries).
_base_ = ['./1_moco_v2_coco.py']

model = dict(num_small_crops=4)
train_dataloader = dict(dataset=dict(pipeline=[
    {{_base_.load_step}},
    dict(type='ConstrainedMultiCrop', num_small=4, constrained=False, backend='torch'),
    {{_base_.augment_step}},
    {{_base_.pack_step}},
]))
