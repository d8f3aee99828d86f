"""tools/analysis/crop_iou.py (paper Sec. 3.1, Fig. 3a) and the Section 3.1 IoU-sweep configs."""
import importlib.util
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from torchvision.ops import box_iou

from revisit_ssl.datasets.transforms import ConstrainedMultiCrop

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SWEEP = [f'configs/section3/moco_v2_400e_coco_max_iou_0p{t}.py' for t in range(1, 6)]
BASE = 'configs/section3/moco_v2_400e_coco.py'
LINE = re.compile(r'^(\S+): (\d+) query/key pairs from (\d+) images: no overlap \(IoU = 0\) '
                  r'([\d.]+)%, mean IoU ([\d.]+)(?:, pairs above max_iou=([\d.]+) .* (\d+))?$')


def tool():
    spec = importlib.util.spec_from_file_location(
        '_crop_iou_tool', osp.join(ROOT, 'tools', 'analysis', 'crop_iou.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory) -> str:
    """Images of assorted sizes in nested folders, one EXIF-rotated, plus a non-image file."""
    root = tmp_path_factory.mktemp('crop_iou_images')
    rng = np.random.default_rng(0)
    sizes = [(48, 64), (120, 80), (33, 200), (200, 33), (64, 64), (15, 20), (300, 100),
             (90, 160)]
    for index, (height, width) in enumerate(sizes):
        folder = root / 'a' if index % 2 else root / 'b' / 'c'
        folder.mkdir(parents=True, exist_ok=True)
        ext = '.JPG' if index == 3 else '.png'
        img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'{index}{ext}'), img)
    # Stored 70 wide x 30 high, shown (and decoded by OpenCV) 30 wide x 70 high.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(0, 256, (30, 70, 3), dtype=np.uint8)).save(
        str(root / 'rotated.jpg'), exif=exif)
    (root / 'notes.txt').write_text('not an image')
    return str(root)


def _image_paths(folder: str):
    paths = []
    for dirpath, _, files in os.walk(folder):
        paths += [osp.join(dirpath, f) for f in files
                  if f.lower().endswith(('.jpg', '.png'))]
    return sorted(paths)


def _parse(stdout: str):
    rows = [LINE.match(line) for line in stdout.splitlines()]
    return [m.groups() for m in rows if m]


@pytest.mark.parametrize('config, max_iou', [(BASE, None), (SWEEP[2], 0.3)])
def test_printed_share_and_mean_match_an_independent_computation(config, max_iou, image_dir,
                                                                  tmp_path, capsys):
    out = str(tmp_path / 'iou.png')
    results = tool().main([osp.join(ROOT, config), '--images', image_dir, '--out', out,
                           '--draws-per-image', '40', '--seed', '3', '--no-progress'])
    # The same seeded draws, independently: the crop as the config states it, image sizes
    # from OpenCV's decoder (EXIF applied), IoU from torchvision.
    crop = ConstrainedMultiCrop(large_size=224, num_small=0, backend='torch', max_iou=max_iou,
                                max_tries=1000 if max_iou else 50)
    rng = np.random.default_rng(3)
    pairs = []
    paths = _image_paths(image_dir)
    assert len(paths) == 9
    for path in paths:
        height, width = cv2.imread(path, cv2.IMREAD_COLOR).shape[:2]
        for _ in range(40):
            pairs.append(crop.sample_boxes(height, width, rng)[0][:2])
    pairs = torch.from_numpy(np.stack(pairs)).double()
    ious = torch.stack([box_iou(p[:1], p[1:])[0, 0] for p in pairs]).numpy()
    share, mean = float(np.mean(ious == 0)), float(ious.mean())

    (row, ) = _parse(capsys.readouterr().out)
    label, num_pairs, num_images, printed_share, printed_mean = row[:5]
    assert label == osp.basename(image_dir) and int(num_pairs) == 360
    assert int(num_images) == 9
    assert abs(float(printed_share) - 100 * share) <= 0.005 + 1e-9
    assert abs(float(printed_mean) - mean) <= 0.00005 + 1e-9
    result = results[label]
    assert result['no_overlap'] == pytest.approx(share, abs=1e-12)
    assert result['mean_iou'] == pytest.approx(mean, abs=1e-12)
    if max_iou is None:
        assert row[5] is None and 'above_max_iou' not in result
        assert ious.max() > 0.5  # unconstrained pairs overlap a lot, often
    else:
        assert float(row[5]) == max_iou
        assert int(row[6]) == result['above_max_iou'] == int((ious > max_iou).sum()) == 0
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert cv2.imread(out).shape[0] > 100


def test_several_folders_subsets_and_labels(image_dir, tmp_path, capsys):
    out = str(tmp_path / 'two.png')
    results = tool().main([osp.join(ROOT, BASE), '--images', image_dir, image_dir, '--labels',
                           'all', 'subset', '--num-images', '3', '--draws-per-image', '2',
                           '--out', out, '--no-progress'])
    rows = _parse(capsys.readouterr().out)
    assert [r[0] for r in rows] == ['all', 'subset']
    assert results['subset']['images'] == 3 and results['subset']['pairs'] == 6
    assert osp.getsize(out) > 0


def test_missing_data_and_bad_configs_name_the_fix(image_dir, tmp_path):
    module, config = tool(), osp.join(ROOT, BASE)
    with pytest.raises(FileNotFoundError, match="--images '.*nowhere' is not a folder"):
        module.main([config, '--images', str(tmp_path / 'nowhere'), '--no-progress'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='--images .* holds no images'):
        module.main([config, '--images', str(tmp_path / 'empty'), '--no-progress'])
    with pytest.raises(SystemExit):
        module.main([config, '--no-progress'])  # --images is required
    with pytest.raises(SystemExit):
        module.main([config, '--images', image_dir, '--labels', 'a', 'b'])
    other = tmp_path / 'rrc.py'
    other.write_text("train_dataloader = dict(dataset=dict(type='CustomDataset', pipeline=["
                     "dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', "
                     "scale=224)]))\n")
    with pytest.raises(ValueError, match='no ConstrainedMultiCrop'):
        module.main([str(other), '--images', image_dir, '--no-progress'])


def test_header_sizes_follow_exif_like_the_decoder(image_dir):
    module = tool()
    for path in _image_paths(image_dir):
        assert module.image_size(path) == cv2.imread(path, cv2.IMREAD_COLOR).shape[:2], path


def test_sweep_leaves_change_only_the_iou_cap():
    base = Config.fromfile(osp.join(ROOT, BASE)).to_dict()
    caps = []
    for rel in SWEEP:
        leaf = Config.fromfile(osp.join(ROOT, rel)).to_dict()
        base_pipeline = base['train_dataloader']['dataset']['pipeline']
        pipeline = leaf['train_dataloader']['dataset']['pipeline']
        assert [t for i, t in enumerate(pipeline) if i != 1] == [
            t for i, t in enumerate(base_pipeline) if i != 1], rel
        crop = dict(pipeline[1])
        caps.append(crop.pop('max_iou'))
        assert crop.pop('max_tries') == 1000
        assert crop == base_pipeline[1], rel
        for key in set(base) | set(leaf):
            if key != 'train_dataloader':
                assert leaf.get(key) == base.get(key), (rel, key)
        leaf['train_dataloader']['dataset']['pipeline'] = base_pipeline
        assert leaf['train_dataloader'] == base['train_dataloader'], rel
    assert caps == [0.1, 0.2, 0.3, 0.4, 0.5]
