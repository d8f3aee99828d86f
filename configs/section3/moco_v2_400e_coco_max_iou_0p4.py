# Section 3.1 / Figure 3: MoCo-v2 on COCO (400 epochs), query and key redrawn until their IoU
# is at most 0.4 ("forcing the IoU between views to be smaller than a predefined threshold").
_base_ = ['./moco_v2_400e_coco.py']

train_dataloader = dict(dataset=dict(pipeline=[
    {{_base_.load_step}},
    # 1000 pairs: at IoU <= 0.1 only ~2.4% of pairs pass on 640x480 images (docs/transforms.md)
    dict(type='ConstrainedMultiCrop', large_size=224, num_small=0, backend='torch',
         max_iou=0.4, max_tries=1000),
    {{_base_.augment_step}},
    {{_base_.pack_step}},
]))
