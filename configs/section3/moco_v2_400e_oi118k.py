# Section 3: MoCo-v2, 400 epochs on OI-118K, a uniform random subset of 118,287 OpenImages
# train images (no labels needed), seed 0.
_base_ = ['./moco_v2_400e_coco.py']

data_layout = """\
data/openimages/
  train/                # OpenImages train images (*.jpg), any sub-folders, no labels needed
    000002b66c9c498e.jpg
    ..."""
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='UniformSubsetDataset',
        num_samples={{_base_.coco_size}},
        seed=0,
        dataset=dict(
            type='CustomDataset',
            data_root='data/openimages',
            data_prefix='train',
            with_label=False,
            pipeline={{_base_.train_pipeline}})))
