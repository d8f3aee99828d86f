"""The release's run scripts as configs: the no-warm-up NN variant and the 800-epoch MoCo-v2
baseline, each the config it leans on plus exactly the release's switches."""
import os.path as osp

from mmengine.config import Config
from mmpretrain.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load(rel):
    return Config.fromfile(osp.join(ROOT, rel))


def differing(a, b, prefix=''):
    """Dotted keys whose values differ between two config dicts."""
    keys = set()
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys |= differing(va, vb, f'{prefix}{k}.')
        elif va != vb:
            keys.add(prefix + k)
    return keys


def test_no_warmup_config_is_the_main_recipe_with_the_release_variant():
    cfg = load('configs/knn_moco_coco_no_warmup.py')
    main = load('configs/knn_moco_coco.py')
    assert differing(cfg.to_dict(), main.to_dict()) == {
        'model.knn_warmup_epochs', 'model.head.search_after_enqueue'}
    assert cfg.model.knn_warmup_epochs == 0
    assert (cfg.model.head.search_after_enqueue, main.model.head.search_after_enqueue) == (
        True, False)
    # it builds, and needs no warm-up switch (the NN loss is on from the first step)
    cfg.model.backbone.update(depth=18, base_channels=8, stem_channels=8)
    cfg.model.neck.update(in_channels=64, hid_channels=32)
    cfg.model.head.update(queue_len=32, backbone_dim=64)
    model = MODELS.build(cfg.model)
    assert model.head.search_after_enqueue and not model.has_knn_warmup


def test_moco_v2_800_epochs_is_row_1_with_the_800_epoch_cosine():
    cfg = load('configs/ablation/1_moco_v2_coco_800e.py')
    row1 = load('configs/ablation/1_moco_v2_coco.py')
    assert differing(cfg.to_dict(), row1.to_dict()) == {
        'train_cfg.max_epochs', 'param_scheduler'}
    assert cfg.train_cfg.max_epochs == 800
    assert [(s.type, s.T_max, s.by_epoch, s.begin, s.end) for s in cfg.param_scheduler] == [
        ('CosineAnnealingLR', 800, True, 0, 800)]
    # the release's scripts/moco_coco_800ep.sh: lr 0.3 at batch 256, m = 0.999, T = 0.2,
    # 2 x 224 px crops, no NN
    assert cfg.optim_wrapper.optimizer.lr == 0.3
    assert cfg.auto_scale_lr == dict(base_batch_size=256, enable=True)
    assert cfg.model.momentum == 0.001 and cfg.model.head.temperature == 0.2
    assert cfg.model.head.use_knn is False and cfg.model.num_small_crops == 0
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert (crop.large_size, crop.num_small) == (224, 0)
