"""The whole kNN-MoCo training pipeline, through a real DataLoader, and unreadable files."""
import random

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.registry import DATASETS

from revisit_ssl.datasets.transforms import (StrictLoadImageFromFile, UnreadableImageError,
                                             build_view_pipeline)

LARGE, SMALL = 32, 16
META_KEYS = PackInputs.DEFAULT_META_KEYS + ('crop_boxes', 'num_crop_fallbacks',
                                            'auto_augmented_views')


def _pipeline(constrained: bool = True, a_plus: bool = True, meta_keys=META_KEYS):
    # What a config writes; the three switches are `constrained`, `a_plus` and num_small=0.
    return [
        dict(type='StrictLoadImageFromFile'),
        dict(type='ConstrainedMultiCrop', large_size=LARGE, small_size=SMALL,
             constrained=constrained),
        dict(type='MultiCropViewAugment', a_plus=a_plus),
        dict(type='PackInputs', meta_keys=meta_keys),
    ]


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


def test_pipeline_output_order_and_metadata(demo_root):
    dataset = DATASETS.build(
        dict(type='CustomDataset', data_root=demo_root, data_prefix='train',
             with_label=False, pipeline=_pipeline()))
    np.random.seed(0)
    packed = dataset[0]
    inputs = packed['inputs']
    # [query, key, small_1..small_4] as (C, H, W) uint8 tensors.
    assert isinstance(inputs, list) and len(inputs) == 6
    assert [tuple(t.shape) for t in inputs] == [(3, LARGE, LARGE)] * 2 + [(3, SMALL, SMALL)] * 4
    assert all(t.dtype == torch.uint8 for t in inputs)
    sample = packed['data_samples']
    boxes = sample.crop_boxes
    height, width = sample.ori_shape
    assert boxes.shape == (6, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (
        boxes[:, 3] <= height).all()
    assert sample.auto_augmented_views[1] is False
    # Crop metadata lives in metainfo only, never among the model inputs.
    assert 'crop_boxes' in sample.metainfo_keys() and 'crop_boxes' not in sample.keys()


def test_default_pack_drops_crop_metadata(demo_root):
    dataset = DATASETS.build(
        dict(type='CustomDataset', data_root=demo_root, data_prefix='train',
             with_label=False, pipeline=_pipeline(meta_keys=PackInputs.DEFAULT_META_KEYS)))
    sample = dataset[1]['data_samples']
    assert 'crop_boxes' not in sample.metainfo_keys()


def test_real_dataloader_and_selfsup_preprocessor(demo_root):
    loader = Runner.build_dataloader(
        dict(
            batch_size=4,
            num_workers=2,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset', data_root=demo_root, data_prefix='train',
                with_label=False, pipeline=_pipeline())),
        seed=0)
    preprocessor = SelfSupDataPreprocessor(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
    batches = 0
    for data in loader:
        inputs, data_samples = preprocessor(data, training=True).values()
        assert [tuple(t.shape) for t in inputs] == [(4, 3, LARGE, LARGE)] * 2 + [
            (4, 3, SMALL, SMALL)] * 4
        assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in inputs)
        # Normalised: far from the raw 0..255 range.
        assert all(t.abs().max() < 5 for t in inputs)
        assert len(data_samples) == 4
        assert all(s.crop_boxes.shape == (6, 4) for s in data_samples)
        batches += 1
        if batches == 3:  # 12 images through 2 worker processes is enough
            break
    assert batches == 3


def test_mc_cc_switch_changes_only_the_small_crops(demo_root):
    dataset = DATASETS.build(
        dict(type='CustomDataset', data_root=demo_root, data_prefix='train',
             with_label=False))
    outputs = {}
    for constrained in (True, False):
        pipeline = build_view_pipeline(_pipeline(constrained=constrained, a_plus=False)[:3])
        assert pipeline.transforms[1].constrained is constrained
        outputs[constrained] = []
        for index in range(8):
            np.random.seed(index)
            random.seed(index)  # RandomGrayscale draws from Python's random module
            outputs[constrained].append(pipeline(dataset.get_data_info(index)))
    for cc, mc in zip(outputs[True], outputs[False]):
        # Same seed: the query and key are the same crops with the same augmentations; only
        # the small crops differ.
        assert np.array_equal(cc['crop_boxes'][:2], mc['crop_boxes'][:2])
        assert all(np.array_equal(a, b) for a, b in zip(cc['img'][:2], mc['img'][:2]))
        assert mc['num_crop_fallbacks'] == 0
    assert any(not np.array_equal(cc['crop_boxes'][2:], mc['crop_boxes'][2:])
               for cc, mc in zip(outputs[True], outputs[False]))


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    load = StrictLoadImageFromFile()
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        load(dict(img_path=missing))
    for name, payload in [('garbage.jpg', b'not an image at all'), ('empty.jpg', b''),
                          ('truncated.png', b'\x89PNG\r\n\x1a\n\x00\x00')]:
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(UnreadableImageError, match=name) as info:
            load(dict(img_path=str(path)))
        assert f'({len(payload)} bytes)' in str(info.value)
    # ignore_empty keeps mmcv's meaning: skip instead of raising.
    assert StrictLoadImageFromFile(ignore_empty=True)(dict(img_path=missing)) is None


def test_corrupt_file_error_surfaces_through_dataset(tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    (folder / 'broken.jpg').write_bytes(b'\xff\xd8\xff garbage')
    dataset = DATASETS.build(
        dict(type='CustomDataset', data_root=str(tmp_path), data_prefix='images',
             with_label=False, pipeline=_pipeline()))
    with pytest.raises(UnreadableImageError, match='broken.jpg'):
        dataset[0]


def test_visualize_crops_tool(tmp_path, project_root):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'visualize_crops', f'{project_root}/tools/analysis/visualize_crops.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'crops.png'
    assert tool.main(['--num-demo', '2', '--out', str(out)]) == str(out)
    assert out.stat().st_size > 10000
    with pytest.raises(OSError, match='nothing.jpg'):
        tool.main([str(tmp_path / 'nothing.jpg'), '--out', str(out)])
