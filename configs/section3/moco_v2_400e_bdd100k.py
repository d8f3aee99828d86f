# Section 3: MoCo-v2, 400 epochs on BDD100K's 70K training images (driving scenes).
_base_ = ['./moco_v2_400e_coco.py']

data_layout = """\
data/bdd100k/
  images/100k/train/    # the 70,000 BDD100K 100k-split training images (*.jpg)
    0000f77c-6257be58.jpg
    ..."""
train_dataloader = dict(
    dataset=dict(data_root='data/bdd100k', data_prefix='images/100k/train'))
