"""Datasets the evaluation tools read: labelled class folders, image lists, and PASCAL VOC.

* Class folders are mmpretrain's ``CustomDataset`` layout (``root/<split>/<class>/*.jpg``),
  which ``tools/make_demo_data.py`` writes as ``data/demo/{train,val}``.
* VOC classification reads ``ImageSets/Main/<split>.txt`` and ``Annotations/<id>.xml``
  (VOC2007's layout; an object's ``difficult`` flag is honoured).
* VOC segmentation reads ``ImageSets/Segmentation/<split>.txt``, ``JPEGImages/<id>.jpg`` and
  the palette PNGs ``SegmentationClass/<id>.png`` (255 = void).
"""
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

__all__ = [
    'eval_pipeline', 'build_pipeline', 'ImageListDataset', 'folder_dataset',
    'make_dataloader', 'dataset_labels', 'VOCClassificationSplit',
    'load_voc_classification', 'load_voc_segmentation_ids', 'read_label_png'
]


def eval_pipeline(img_size: int = 224,
                  resize_size: Optional[int] = None) -> List[dict]:
    """The deterministic evaluation pipeline: resize the short edge, centre crop, pack.

    Args:
        img_size (int): Side of the centre crop. Defaults to 224.
        resize_size (int, optional): Short edge before cropping; defaults to
            ``img_size * 8 / 7`` (256 for 224, ImageNet's ratio).
    """
    resize_size = resize_size or int(round(img_size * 8 / 7))
    if resize_size < img_size:
        raise ValueError(f'resize size {resize_size} is smaller than the crop '
                         f'{img_size}')
    return [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=resize_size, edge='short'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackInputs'),
    ]


def build_pipeline(pipeline: Sequence[dict]) -> Callable[[dict], dict]:
    """Compose transform configs with mmpretrain's ``TRANSFORMS`` registry."""
    from mmcv.transforms import Compose
    from mmpretrain.registry import TRANSFORMS
    return Compose([TRANSFORMS.build(t) for t in pipeline])


class ImageListDataset(torch.utils.data.Dataset):
    """Images given by path, passed through a pipeline.

    Args:
        img_paths (Sequence[str]): Image files.
        pipeline (Sequence[dict]): Transform configs ending with ``PackInputs``.
    """

    def __init__(self, img_paths: Sequence[str],
                 pipeline: Sequence[dict]) -> None:
        self.img_paths = list(img_paths)
        self.pipeline = build_pipeline(pipeline)

    def __len__(self) -> int:
        return len(self.img_paths)

    def __getitem__(self, index: int) -> dict:
        return self.pipeline(dict(img_path=self.img_paths[index]))


def folder_dataset(data_root: str,
                   prefix: str,
                   pipeline: Sequence[dict],
                   classes: Optional[Sequence[str]] = None):
    """A labelled mmpretrain ``CustomDataset`` over ``data_root/prefix/<class>/*``.

    Args:
        data_root (str): Dataset root.
        prefix (str): Split folder, e.g. ``'train'``.
        pipeline (Sequence[dict]): Transform configs.
        classes (Sequence[str], optional): Class names that must match the split's folders
            (pass the train split's classes to the val split so labels agree).
    """
    from mmpretrain.registry import DATASETS
    folder = osp.join(data_root, prefix)
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'split folder {folder!r} does not exist; expected '
            f'{data_root}/{prefix}/<class>/<image> (mmpretrain CustomDataset '
            'layout). Set --data-root and the split options')
    dataset = DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=data_root,
            data_prefix=prefix,
            with_label=True,
            pipeline=list(pipeline)))
    if classes is not None and tuple(dataset.metainfo['classes']) != tuple(
            classes):
        raise ValueError(
            f'class folders of {folder!r} {list(dataset.metainfo["classes"])}'
            f' differ from the training split\'s {list(classes)}; labels '
            'would not agree')
    return dataset


def dataset_labels(dataset) -> np.ndarray:
    """Single labels of an mmengine dataset, read from its annotations (no image loading)."""
    return np.array([
        int(dataset.get_data_info(i)['gt_label']) for i in range(len(dataset))
    ])


def make_dataloader(dataset,
                    batch_size: int = 64,
                    num_workers: int = 2) -> torch.utils.data.DataLoader:
    """An in-order dataloader that keeps data samples as lists (``pseudo_collate``)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=pseudo_collate,
        persistent_workers=False)


class VOCClassificationSplit:
    """Images and multi-label targets of one VOC classification split.

    Args:
        img_paths (list[str]): ``JPEGImages/<id>.jpg`` per image.
        targets (np.ndarray): ``(N, C)`` bool, the class has a non-difficult object.
        difficult (np.ndarray): ``(N, C)`` bool, the class has only difficult objects.
        classes (tuple[str]): Class names, the column order.
    """

    def __init__(self, img_paths: List[str], targets: np.ndarray,
                 difficult: np.ndarray, classes: Sequence[str]) -> None:
        self.img_paths = img_paths
        self.targets = targets
        self.difficult = difficult
        self.classes = tuple(classes)


def _read_ids(path: str) -> List[str]:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'image set {path!r} does not exist; expected the VOC layout '
            '<root>/ImageSets/{Main,Segmentation}/<split>.txt (one image id '
            'per line). Set --voc-root to the VOC2007 (or VOC2012) folder')
    with open(path) as f:
        # VOC's per-class files hold "id label"; the split files just "id"
        return [line.split()[0] for line in f if line.strip()]


def _objects(xml_path: str) -> List[tuple]:
    if not osp.isfile(xml_path):
        raise FileNotFoundError(f'annotation {xml_path!r} does not exist')
    root = ET.parse(xml_path).getroot()
    objects = []
    for obj in root.findall('object'):
        difficult = obj.find('difficult')
        objects.append((obj.find('name').text.strip(),
                        difficult is not None
                        and int(difficult.text or 0) == 1))
    return objects


def load_voc_classification(voc_root: str,
                            split: str,
                            classes: Optional[Sequence[str]] = None
                            ) -> VOCClassificationSplit:
    """Read one VOC classification split.

    Args:
        voc_root (str): The ``VOC2007`` (or ``VOC2012``) folder.
        split (str): Image set name, e.g. ``'trainval'`` or ``'test'``.
        classes (Sequence[str], optional): Column order. Defaults to the 20 VOC classes when
            every object name is one of them, else the sorted names found in this split.

    Returns:
        VOCClassificationSplit: Paths, targets and difficult flags.
    """
    ids = _read_ids(osp.join(voc_root, 'ImageSets', 'Main', f'{split}.txt'))
    per_image = [
        _objects(osp.join(voc_root, 'Annotations', f'{i}.xml')) for i in ids
    ]
    names = sorted({name for objs in per_image for name, _ in objs})
    if classes is None:
        from mmpretrain.datasets.categories import VOC2007_CATEGORIES
        classes = VOC2007_CATEGORIES if set(names) <= set(
            VOC2007_CATEGORIES) else names
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f'split {split!r} has objects of classes {unknown} '
                         f'that are not among {list(classes)}')
    index = {name: c for c, name in enumerate(classes)}
    targets = np.zeros((len(ids), len(classes)), bool)
    difficult = np.zeros_like(targets)
    for row, objs in enumerate(per_image):
        for name, is_difficult in objs:
            (difficult if is_difficult else targets)[row, index[name]] = True
    difficult &= ~targets  # "difficult" only where no easy object of the class exists
    img_paths = [osp.join(voc_root, 'JPEGImages', f'{i}.jpg') for i in ids]
    return VOCClassificationSplit(img_paths, targets, difficult, classes)


def load_voc_segmentation_ids(voc_root: str, split: str) -> List[str]:
    """Image ids of ``ImageSets/Segmentation/<split>.txt``."""
    return _read_ids(
        osp.join(voc_root, 'ImageSets', 'Segmentation', f'{split}.txt'))


def read_label_png(path: str) -> np.ndarray:
    """Class indices of a (palette) label PNG, as VOC's ``SegmentationClass`` stores them."""
    from PIL import Image
    if not osp.isfile(path):
        raise FileNotFoundError(f'label map {path!r} does not exist')
    with Image.open(path) as img:
        if img.mode not in ('P', 'L', 'I', 'I;16'):
            raise ValueError(
                f'{path!r} is a {img.mode} image; a label map must be a '
                'palette or grey PNG of class indices')
        return np.array(img).astype(np.int64)
