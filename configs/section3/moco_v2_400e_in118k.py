# Section 3: MoCo-v2, 400 epochs on IN-118K, a class-balanced random subset of ImageNet's train
# split with as many images as COCO train2017 (118,287; 118 or 119 per class), seed 0.
_base_ = ['./moco_v2_400e_coco.py']

data_layout = """\
data/imagenet/
  meta/train.txt        # mmpretrain ImageNet annotation: "<class_dir>/<image>.JPEG <label>"
  train/
    n01440764/*.JPEG    # the 1000 ImageNet-1k class folders
    ..."""
# ImageNet's train split with the inherited pipeline; IN-118K-LT draws from it too
imagenet_train = dict(
    type='ImageNet',
    data_root='data/imagenet',
    split='train',
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='UniformSubsetDataset',
        num_samples={{_base_.coco_size}},
        class_balanced=True,
        seed=0,
        dataset=imagenet_train))
