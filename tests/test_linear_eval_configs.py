"""ImageNet / Places365 linear evaluation configs (issue 17, item 5; paper Table 4): they are
mmpretrain's MoCo-v2 linear benchmark (``mmpretrain::`` inheritance) with our checkpoint read
through ``prefix='backbone.'``; built on CPU without data, initialised from a tiny KNNMoCo
checkpoint, and the Places365 class-folder layout read by the config's dataset."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from test_downstream_pretrained_init import (assert_equal_state, build_and_init,
                                             knn_moco_checkpoint)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LINEAR = osp.join(ROOT, 'configs', 'downstream', 'mmpretrain')
IN1K = osp.join(LINEAR, 'resnet50_knn-moco-pre_8xb32-linear-steplr-100e_in1k.py')
PLACES = osp.join(LINEAR, 'resnet50_knn-moco-pre_8xb32-linear-steplr-100e_places365.py')
BENCHMARK = 'mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py'  # mmpretrain's


@pytest.mark.parametrize('config, classes, dataset', [
    (IN1K, 1000, 'ImageNet'),
    (PLACES, 365, 'CustomDataset'),
], ids=['in1k', 'places365'])
def test_linear_benchmark_with_our_checkpoint(config, classes, dataset):
    cfg = Config.fromfile(config)
    assert cfg.default_scope == 'mmpretrain'
    bb = cfg.model.backbone
    assert bb.init_cfg == dict(
        type='Pretrained',
        checkpoint='work_dirs/knn_moco_coco/epoch_200.pth',
        prefix='backbone.')
    # MoCo-v2's linear protocol: frozen ResNet-50, linear head, SGD lr 30, steps 60 / 80
    assert (bb.type, bb.depth, bb.frozen_stages) == ('ResNet', 50, 4)
    assert cfg.model.head.type == 'LinearClsHead'
    assert cfg.model.head.num_classes == classes == cfg.data_preprocessor.num_classes
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 30.0, 0.9, 0.0)
    (steps, ) = cfg.param_scheduler
    assert steps.milestones == [60, 80] and cfg.train_cfg.max_epochs == 100
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 256
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == dataset
    assert {'type': 'PretrainedInitCheckHook'} in cfg.custom_hooks
    assert cfg.get('data_layout')


def _unscoped(node):
    """``node`` without the ``_scope_`` keys that ``mmpretrain::`` inheritance adds."""
    if isinstance(node, dict):
        return {k: _unscoped(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(_unscoped(v) for v in node)
    return node


def test_in1k_is_the_benchmark_but_for_the_checkpoint():
    ours = _unscoped(Config.fromfile(IN1K).to_dict())
    import mmpretrain
    theirs = _unscoped(
        Config.fromfile(
            osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs',
                     BENCHMARK)).to_dict())
    ours['model']['backbone'].pop('init_cfg')
    theirs['model']['backbone'].pop('init_cfg')
    added = {
        'custom_imports', 'custom_hooks', 'pretrained_backbone', 'data_layout',
        'auto_scale_lr'
    }
    assert set(ours) - set(theirs) == added
    assert {k: v for k, v in ours.items() if k not in added} == theirs


@pytest.mark.parametrize('config', [IN1K, PLACES], ids=['in1k', 'places365'])
def test_backbone_initialised_and_frozen(config, tmp_path):
    path = str(tmp_path / 'epoch_200.pth')
    weights = knn_moco_checkpoint(path, width=64)
    cfg = Config.fromfile(config)
    # ResNet-18 instead of -50 keeps the test small; the init path is the same
    cfg.merge_from_dict({'model.backbone.depth': 18, 'model.head.in_channels': 512})
    model = build_and_init(cfg, path)  # PretrainedInitCheckHook passes around it
    assert_equal_state(model.backbone, weights['online'])
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(m.training for m in model.backbone.modules()
                   if 'BatchNorm' in type(m).__name__)
    assert all(p.requires_grad for p in model.head.parameters())


def test_places365_layout_read_by_the_config(tmp_path):
    """The documented class-folder layout: sorted folder names are the class indices."""
    import cv2
    from mmpretrain.registry import DATASETS
    names = ['airfield', 'zen_garden', 'bakery-shop']
    for split in ('train', 'val'):
        for name in names:
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / '00000001.jpg'), np.zeros((8, 8, 3), np.uint8))
    cfg = Config.fromfile(PLACES)
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val')):
        ds_cfg = cfg[loader].dataset
        ds_cfg.data_root = str(tmp_path)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            ds = DATASETS.build(ds_cfg)
        assert ds.CLASSES == tuple(sorted(names))
        assert len(ds) == 3
        for i in range(3):
            info = ds.get_data_info(i)
            label = int(info['gt_label'])
            assert osp.basename(osp.dirname(info['img_path'])) == sorted(names)[label]
            assert f'/{split}/' in info['img_path']
