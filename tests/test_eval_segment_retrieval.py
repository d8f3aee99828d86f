"""Semantic segment retrieval (paper appendix A.7) on constructed images with known regions."""
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image

from revisit_ssl.evaluation import (cluster_regions, iou_from_confusion,
                                    majority_labels, segment_retrieval_miou)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# class -> feature direction of the synthetic feature maps (class 0 = background)
DIRECTIONS = np.eye(4)[:3] + 0.05


def _feature_map(class_map, rng, noise=0.01):
    """(C, h, w) features: each pixel the direction of its class plus a little noise."""
    feats = DIRECTIONS[class_map].transpose(2, 0, 1)
    return feats + noise * rng.standard_normal(feats.shape)


def _upsample(class_map, factor):
    return np.kron(class_map, np.ones((factor, factor), int))


def _halves(left, right, size=8, vertical=True):
    m = np.full((size, size), left)
    if vertical:
        m[:, size // 2:] = right
    else:
        m[size // 2:, :] = right
    return m


def test_separable_regions_give_miou_one():
    rng = np.random.default_rng(0)
    train_maps = [_halves(0, 1), _halves(2, 0, vertical=False), _halves(1, 2)]
    val_maps = [_halves(2, 1, vertical=False), _halves(0, 2)]
    # features at 1/4 of the ground-truth resolution; regions align with the stride
    train = [(_feature_map(m, rng), _upsample(m, 4)) for m in train_maps]
    val = [(_feature_map(m, rng), _upsample(m, 4)) for m in val_maps]
    out = segment_retrieval_miou(train, val, num_classes=3, num_clusters=15)
    assert out['mIoU'] == 1.0
    assert out['per_class_iou'] == [1.0, 1.0, 1.0]
    assert out['num_train_regions'] >= 6  # at least one region per class half


def test_constructed_partial_case_gives_one_third():
    # Train: class 1 looks like direction 1, class 2 like direction 2. In the val image the
    # right half is *labelled* background but looks like class 2, so it is retrieved as 2:
    #   class 0: TP 0, FN 32 -> IoU 0;  class 1: IoU 1;  class 2: TP 0, FP 32 -> IoU 0
    rng = np.random.default_rng(1)
    train_map = _halves(1, 2)
    val_look, val_truth = _halves(1, 2), _halves(1, 0)
    train = [(_feature_map(train_map, rng), train_map)]
    val = [(_feature_map(val_look, rng), val_truth)]
    out = segment_retrieval_miou(train, val, num_classes=3)
    assert out['per_class_iou'] == [0.0, 1.0, 0.0]
    assert out['mIoU'] == pytest.approx(1 / 3)
    assert np.array(out['confusion']).tolist() == [[0, 0, 32], [0, 32, 0],
                                                   [0, 0, 0]]


def test_single_nearest_region_not_a_vote():
    # Many train regions of class 1 near a query, one of class 2 closest: class 2 wins.
    rng = np.random.default_rng(2)
    close = np.array([1.0, 0.02, 0])
    far = np.array([1.0, 0.3, 0])
    train = [(np.tile(close[:, None, None], (1, 4, 4)), np.full((4, 4), 2))]
    train += [(np.tile(far[:, None, None], (1, 4, 4)) +
               0.001 * rng.standard_normal((3, 4, 4)), np.full((4, 4), 1))
              for _ in range(5)]
    val = [(np.tile(np.array([1.0, 0, 0])[:, None, None], (1, 4, 4)),
            np.full((4, 4), 1))]
    out = segment_retrieval_miou(train, val, num_classes=3)
    assert out['per_class_iou'][1] == 0.0 and out['per_class_iou'][2] == 0.0


def test_cluster_regions_and_majority_labels():
    rng = np.random.default_rng(3)
    class_map = _halves(0, 1)
    regions = cluster_regions(_feature_map(class_map, rng), num_clusters=2)
    # two clusters = the two halves, descriptors unit length
    assert len(np.unique(regions.region_map)) == 2
    for r in range(2):
        assert len(np.unique(class_map[regions.region_map == r])) == 1
    np.testing.assert_allclose(np.linalg.norm(regions.descriptors, axis=1), 1)
    gt = class_map.copy()
    gt[0, 0] = 255  # ignored pixels do not vote
    labels = majority_labels(regions.region_map, gt, 2)
    assert sorted(labels.tolist()) == [0, 1]
    # a constant map has one distinct feature: one region, however large K is
    single = cluster_regions(np.ones((3, 4, 4)), num_clusters=15)
    assert single.descriptors.shape == (1, 3)


def test_iou_from_confusion_hand_case():
    conf = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    miou, per_class = iou_from_confusion(conf)
    assert per_class[0] == pytest.approx(3 / (3 + 1 + 2))
    assert per_class[1] == pytest.approx(4 / (4 + 2 + 1))
    assert per_class[2] is None  # absent from truth and prediction
    assert miou == pytest.approx((3 / 6 + 4 / 7) / 2)


def test_labels_outside_num_classes_are_refused():
    rng = np.random.default_rng(4)
    m = _halves(0, 3)
    with pytest.raises(ValueError, match='outside'):
        segment_retrieval_miou([(_feature_map(_halves(0, 1), rng), m)],
                               [(_feature_map(_halves(0, 1), rng), m)],
                               num_classes=3)


# ------------------------------------------------------- end to end through the tool
@MODELS.register_module(force=True)
class EvalTestColourPool(nn.Module):
    """Test backbone: a 1x1 identity conv, then 16x16 average pooling (a colour "feature")."""

    def __init__(self, stride: int = 16) -> None:
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(3).view(3, 3, 1, 1))

    def forward(self, x):
        return (F.avg_pool2d(self.proj(x), self.stride), )


# BGR colours of the constructed classes
COLOURS = {0: (128, 128, 128), 1: (40, 40, 230), 2: (40, 220, 40)}


def _write_image(root, img_id, look, truth):
    """A 64x64 image painted block-wise by ``look`` (4x4 classes), labelled by ``truth``."""
    img = np.zeros((64, 64, 3), np.uint8)
    for (i, j), c in np.ndenumerate(look):
        img[16 * i:16 * (i + 1), 16 * j:16 * (j + 1)] = COLOURS[c]
    cv2.imwrite(osp.join(root, 'JPEGImages', f'{img_id}.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, 100])
    png = Image.fromarray(_upsample(truth, 16).astype(np.uint8))
    png = png.convert('P')  # an explicit palette, so that PNG keeps distinct indices
    png.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    png.save(osp.join(root, 'SegmentationClass', f'{img_id}.png'))


@pytest.fixture(scope='module')
def constructed_voc(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('seg_voc'))
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub))
    q = lambda a, b, v: _halves(a, b, 4, v)  # noqa: E731
    _write_image(root, 'tr0', q(1, 2, True), q(1, 2, True))
    _write_image(root, 'tr1', q(0, 1, False), q(0, 1, False))
    _write_image(root, 'va0', q(2, 1, False), q(2, 1, False))
    _write_image(root, 'vb0', q(1, 2, True), q(1, 0, True))  # right half mislabelled
    sets = {'train': ['tr0', 'tr1'], 'val_a': ['va0'], 'val_b': ['vb0']}
    for name, ids in sets.items():
        with open(osp.join(root, 'ImageSets', 'Segmentation', f'{name}.txt'),
                  'w') as f:
            f.write('\n'.join(ids) + '\n')
    cfg = Config(
        dict(
            model=dict(
                type='MoCo',
                backbone=dict(type='EvalTestColourPool'),
                data_preprocessor=dict(
                    mean=[0, 0, 0], std=[255, 255, 255], to_rgb=False))))
    cfg_path = osp.join(root, 'colour_cfg.py')
    cfg.dump(cfg_path)
    ckpt = osp.join(root, 'colour.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.proj.weight': torch.eye(3).view(3, 3, 1, 1)
            },
            'meta': {}
        }, ckpt)
    return root, cfg_path, ckpt


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_eval_tool_{name}', osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('val_split,expected', [('val_a', 1.0),
                                                ('val_b', 1 / 3)])
def test_tool_on_constructed_images(constructed_voc, tmp_path, val_split,
                                    expected, capsys):
    root, cfg_path, ckpt = constructed_voc
    out = str(tmp_path / 'seg.json')
    result = _tool('segment_retrieval').main([
        cfg_path, ckpt, '--voc-root', root, '--val-split', val_split,
        '--num-classes', '3', '--out', out, '--num-workers', '0',
        '--no-progress'
    ])
    assert result['mIoU'] == pytest.approx(expected)
    with open(out) as f:
        assert json.load(f)['mIoU'] == pytest.approx(expected)
    # the test backbone has no strides/dilations: the tool says it runs it as is
    assert 'used as is' in capsys.readouterr().out
