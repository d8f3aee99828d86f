# Section 3: MoCo-v2, 400 epochs on IN-118K-LT: ImageNet train images whose class sizes follow
# a Pareto distribution as in ImageNet-LT (alpha=6, 1280 to 5 images per class, 115,846
# images); which classes form the head is a seeded permutation, seed 0.
_base_ = ['./moco_v2_400e_in118k.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ParetoLongTailDataset',
        alpha=6.,
        max_count=1280,
        min_count=5,
        total=115846,
        seed=0,
        dataset={{_base_.imagenet_train}}))
