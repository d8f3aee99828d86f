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


def _overlap(box, key):
    """Share of ``box``'s area inside ``key`` (both x1, y1, x2, y2), written independently."""
    w = min(box[2], key[2]) - max(box[0], key[0])
    h = min(box[3], key[3]) - max(box[1], key[1])
    return max(w, 0) * max(h, 0) / ((box[2] - box[0]) * (box[3] - box[1]))


def test_visualize_crops_tool(tmp_path, project_root, monkeypatch):
    """Each panel shows the demo scene, the sampler's boxes, styled by the CC rule, and the
    key box lands on the right pixels of the PNG.

    The figure is kept by intercepting ``plt.close``; scenes are redrawn from the seed, the
    overlap rule is recomputed here from the drawn rectangles.
    """
    import importlib.util
    import re

    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle
    from PIL import Image

    from revisit_ssl.datasets.transforms import ConstrainedMultiCrop
    from revisit_ssl.utils.demo_data import draw_scene
    spec = importlib.util.spec_from_file_location(
        'visualize_crops', f'{project_root}/tools/analysis/visualize_crops.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    close, figures = plt.close, []
    monkeypatch.setattr(tool.plt, 'close', figures.append)
    out = tmp_path / 'crops.png'
    seed, num_small, min_overlap = 3, 4, 0.2
    try:
        assert tool.main(['--num-demo', '2', '--out', str(out), '--seed', str(seed)]) == str(out)
        (fig, ) = figures
        png = np.asarray(Image.open(out).convert('RGB'))
        assert png.shape == (680, 900, 3)  # figsize (9, 3.4 x 2 rows) at dpi 100
        rng = np.random.default_rng(seed)
        scenes = [draw_scene(rng, (320, 240)).image[..., ::-1] for _ in range(2)]
        shown = {}
        for index, ax in enumerate(fig.axes):
            row, col = divmod(index, 2)
            assert np.array_equal(ax.images[0].get_array(), scenes[row])
            rects = [p for p in ax.patches if isinstance(p, Rectangle)]
            boxes = np.array([[r.get_x() + 0.5, r.get_y() + 0.5, r.get_x() + 0.5 + r.get_width(),
                               r.get_y() + 0.5 + r.get_height()] for r in rects])
            assert boxes.shape == (2 + num_small, 4)
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 320).all() and (
                boxes[:, 3] <= 240).all() and (boxes[:, 2:] > boxes[:, :2]).all()
            # the sampler the training pipeline uses, with the tool's per-row seed
            sampler = ConstrainedMultiCrop(num_small=num_small, constrained=col == 0,
                                           min_overlap=min_overlap)
            want, _ = sampler.sample_boxes(240, 320, np.random.default_rng([seed, row]))
            np.testing.assert_allclose(boxes, want)
            key = boxes[ConstrainedMultiCrop.KEY_INDEX]
            assert rects[0].get_edgecolor() == to_rgba('tab:blue')
            assert rects[1].get_edgecolor() == to_rgba('red')
            broken = 0
            for rect, box in zip(rects[2:], boxes[2:]):
                ok = _overlap(box, key) >= min_overlap
                broken += not ok
                assert rect.get_edgecolor() == to_rgba('limegreen' if ok else 'orange')
                assert (rect.get_linestyle() == '--') == (not ok)
            title = ax.get_title()
            assert title.startswith(('CC: ' if col == 0 else 'MC: ') + f'demo scene {row},')
            assert int(re.search(r'(\d+)/4 small crops break', title).group(1)) == broken
            if col == 0 and 'fallbacks' not in title:
                assert broken == 0  # CC keeps the rule unless the sampler fell back
            shown[row, col] = boxes
            # the key's outline is red in the PNG (display y is measured from the bottom)
            x1, y1, x2, y2 = key - 0.5
            edge = np.linspace(0, 1, 40)
            points = np.concatenate([
                np.stack([x1 + (x2 - x1) * edge, np.full(40, y), ], 1) for y in (y1, y2)
            ] + [np.stack([np.full(40, x), y1 + (y2 - y1) * edge], 1) for x in (x1, x2)])
            pixels = ax.transData.transform(points)
            red = 0
            for px, py in pixels:
                c, r = int(round(px)), int(round(png.shape[0] - py))
                patch = png[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].reshape(-1, 3).astype(int)
                red += bool(((patch[:, 0] > 200) & (patch[:, 1] < 80) & (patch[:, 2] < 80)).any())
            assert red >= 0.8 * len(points), (row, col, red)
        for row in range(2):  # same seed per row: same query and key, other small crops
            np.testing.assert_array_equal(shown[row, 0][:2], shown[row, 1][:2])
    finally:
        for fig in figures:
            close(fig)
    with pytest.raises(OSError, match='nothing.jpg'):
        tool.main([str(tmp_path / 'nothing.jpg'), '--out', str(out)])
