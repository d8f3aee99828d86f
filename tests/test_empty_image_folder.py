"""check_data_roots: a CustomDataset-style folder without image files is a clear error before
any dataloader is built (mmpretrain would raise 'Found 0 files' from the dataloader build)."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from revisit_ssl.utils.data_check import (DatasetNotFoundError, EmptyImageFolderError,
                                          check_data_roots, image_extensions)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def coco_cfg(data_root):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_coco.py'))
    cfg.train_dataloader.dataset.data_root = str(data_root)
    return cfg


def image(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))


def test_extensions_are_mmpretrains():
    from mmpretrain.datasets import CustomDataset, ImageNet
    default = CustomDataset(data_prefix='x', lazy_init=True).extensions
    assert image_extensions(dict(type='CustomDataset')) == tuple(sorted(default))
    assert image_extensions(dict(type='ImageNet')) == tuple(sorted(ImageNet.IMG_EXTENSIONS))
    assert image_extensions(dict(type='CustomDataset', extensions=['.WEBP'])) == ('.webp', )


def test_folder_without_images_names_folder_extensions_and_key(tmp_path):
    (tmp_path / 'train2017' / 'sub').mkdir(parents=True)
    (tmp_path / 'train2017' / 'sub' / 'photo.webp').write_bytes(b'x')
    with pytest.raises(EmptyImageFolderError) as info:
        check_data_roots(coco_cfg(tmp_path))
    msg = str(info.value)
    assert isinstance(info.value, DatasetNotFoundError)  # tools/train.py prints it, exit 1
    assert repr(str(tmp_path / 'train2017')) in msg
    assert 'extensions looked for: .bmp .jpeg .jpg .pgm .png .ppm .tif' in msg
    assert "other files found, e.g. 'sub/photo.webp'" in msg
    assert '--cfg-options train_dataloader.dataset.data_root=' in msg
    assert 'train_dataloader.dataset.extensions=[.jpg,.webp]' in msg
    assert 'train2017/            # 118,287 COCO' in msg  # the config's data_layout
    # with the extension allowed, the same folder passes
    cfg = coco_cfg(tmp_path)
    cfg.train_dataloader.dataset.extensions = ['.webp']
    check_data_roots(cfg)


def test_one_image_deep_down_is_enough(tmp_path):
    image(tmp_path / 'train2017' / 'a' / 'b' / 'x.JPG')  # case-insensitive, recursive
    check_data_roots(coco_cfg(tmp_path))


def test_labelled_folder_needs_images_in_class_folders(tmp_path):
    """with_label=True (mmpretrain's default) looks in class sub-folders only."""
    image(tmp_path / 'train' / 'top.png')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='CustomDataset', data_root=str(tmp_path), data_prefix='train'))))
    with pytest.raises(EmptyImageFolderError) as info:
        check_data_roots(cfg)
    assert 'has no class sub-folder' in str(info.value)
    assert 'holds 1 image(s) directly' in str(info.value)
    assert 'set with_label=False' in str(info.value)
    image(tmp_path / 'train' / 'cat' / 'a.png')
    check_data_roots(cfg)


def test_wrapped_imagenet_split_and_annotation_files(tmp_path):
    """Section 3 configs: UniformSubsetDataset(ImageNet(split='train'))."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/section3/moco_v2_400e_in118k.py'))
    cfg.train_dataloader.dataset.dataset.data_root = str(tmp_path)
    (tmp_path / 'train' / 'n01440764').mkdir(parents=True)
    with pytest.raises(EmptyImageFolderError) as info:
        check_data_roots(cfg)
    assert 'train_dataloader.dataset.dataset.data_root=' in str(info.value)
    assert 'in the 1 class sub-folder(s)' in str(info.value)
    # with meta/train.txt the dataset reads the annotation file: no folder listing
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('n01440764/a.JPEG 0\n')
    check_data_roots(cfg)


def test_other_scopes_are_not_listed(tmp_path):
    """mmseg / mmdet datasets have their own layouts: only the path check applies."""
    (tmp_path / 'img').mkdir()
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='PascalVOCDataset', data_root=str(tmp_path), data_prefix=dict(img_path='img')))))
    check_data_roots(cfg)


def test_train_py_stops_before_any_dataloader(tmp_path):
    (tmp_path / 'train').mkdir()
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/knn_moco_demo.py', '--work-dir',
         str(tmp_path / 'work'), '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}'],
        cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert 'ERROR: Dataset for train_dataloader has no images' in proc.stderr
    assert 'Found 0 files' not in proc.stderr + proc.stdout  # mmpretrain's traceback
    assert 'Traceback' not in proc.stderr
