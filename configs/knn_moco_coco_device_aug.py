# The main recipe (configs/knn_moco_coco.py) with the photometric view augmentation on the
# accelerator: the loader workers only decode, crop and resize (ConstrainedMultiCrop, CC,
# 2 x 160 + 4 x 96), and DeviceViewAugmentPreprocessor applies the same view transforms
# (colour jitter, grayscale, blur, flip; A+ = flip + AutoAugment on the query and each small
# crop with p = 0.5, never on the key) batched on the GPU with per-sample random parameters,
# reading the same config lists as the CPU path (docs/transforms.md, "Accelerator path").
#   python tools/train.py configs/knn_moco_coco_device_aug.py
# On the demo data, the demo's settings with this path (blur scaled to 32 px):
#   python tools/train.py configs/knn_moco_demo.py --cfg-options \
#     model.data_preprocessor.type=DeviceViewAugmentPreprocessor ... (see docs/transforms.md)
_base_ = ['./knn_moco_coco.py']

model = dict(
    data_preprocessor=dict(
        type='DeviceViewAugmentPreprocessor',
        key_transforms={{_base_.view_transforms}},  # the key: never A+
        view_transforms={{_base_.view_transforms}},
        auto_augment_transforms={{_base_.auto_augment_transforms}},
        a_plus=True,
        a_plus_prob=0.5,
        key_index=1))

# Workers: decode + crop + resize only; the views stay uint8 BGR until the preprocessor.
train_dataloader = dict(
    dataset=dict(pipeline=[
        {{_base_.load_step}},
        {{_base_.crop_step}},
        {{_base_.pack_step}},
    ]))
