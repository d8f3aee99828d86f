"""Datasets and the one dataloader builder of the evaluation.

* Class folders are mmpretrain's ``CustomDataset`` layout (``root/<split>/<class>/*.jpg``),
  which ``tools/make_demo_data.py`` writes as ``data/demo/{train,val}``.
* VOC classification is mmpretrain's :class:`~mmpretrain.datasets.VOC`
  (``ImageSets/Main/<split>.txt``, ``Annotations/<id>.xml`` with the ``difficult`` flags).
* VOC segmentation is mmseg's ``PascalVOCDataset`` (``ImageSets/Segmentation/<split>.txt``,
  ``JPEGImages/<id>.jpg``, palette PNGs ``SegmentationClass/<id>.png``, 255 = void).

Every loader, the :class:`~revisit_ssl.engine.hooks.KNNMonitorHook`'s and the tools', comes
from :func:`build_eval_dataloader`, i.e. mmengine's ``Runner.build_dataloader``.
"""
import copy
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    'eval_pipeline', 'build_eval_dataloader', 'build_labelled_loaders',
    'folder_dataset',
    'dataset_labels', 'VOCClassificationSplit', 'load_voc_classification',
    'voc_segmentation_dataset'
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


def build_eval_dataloader(dataloader: Union[dict, torch.utils.data.Dataset],
                          batch_size: int = 64,
                          num_workers: int = 0,
                          seed: Optional[int] = 0
                          ) -> torch.utils.data.DataLoader:
    """An in-order dataloader through mmengine's ``Runner.build_dataloader``.

    Args:
        dataloader (dict | Dataset): A dataloader config (``dict(dataset=..., ...)``, the
            dataset a config or an instance), or a dataset alone (config or instance).
        batch_size (int): Used when the config sets none. Defaults to 64.
        num_workers (int): Used when the config sets none. Defaults to 0.
        seed (int, optional): Seed of the workers. Defaults to 0.

    Returns:
        DataLoader: ``DefaultSampler(shuffle=False)`` unless the config chose a sampler
        (under distributed training it yields this rank's shard), ``pseudo_collate``.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    if isinstance(dataloader, dict) and 'dataset' in dataloader:
        cfg = dict(dataloader)
    else:
        cfg = dict(dataset=dataloader)
    cfg.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
    cfg.setdefault('batch_size', batch_size)
    cfg.setdefault('num_workers', num_workers)
    # dataset and transform names resolve in mmpretrain's registries unless the caller chose
    # a scope (mmpretrain configs set default_scope='mmpretrain')
    scope = None if DefaultScope.get_current_instance() else 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        return Runner.build_dataloader(cfg, seed=seed)


def build_labelled_loaders(train_dataloader: dict,
                           val_dataloader: dict,
                           seed: Optional[int] = 0,
                           owner: str = 'KNNMonitorHook') -> tuple:
    """The memory and query loaders of a kNN evaluation, refused when their classes differ.

    Args:
        train_dataloader (dict): Dataloader config of the labelled memory split.
        val_dataloader (dict): Dataloader config of the labelled query split.
        seed (int, optional): Seed of the workers. Defaults to 0.
        owner (str): Who asks, for the error message. Defaults to 'KNNMonitorHook'.

    Returns:
        tuple[DataLoader, DataLoader]: Built by :func:`build_eval_dataloader`.
    """
    loaders = tuple(
        build_eval_dataloader(copy.deepcopy(cfg), seed=seed)
        for cfg in (train_dataloader, val_dataloader))
    classes = [
        tuple(loader.dataset.metainfo.get('classes') or ())
        for loader in loaders
    ]
    if classes[0] and classes[1] and classes[0] != classes[1]:
        raise ValueError(
            f'{owner}: the train split has classes {classes[0]} but the val '
            f'split {classes[1]}; labels would not agree')
    return loaders


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


class VOCClassificationSplit:
    """Images and multi-label targets of one VOC classification split.

    Args:
        dataset (mmpretrain.datasets.VOC): The split, with the evaluation pipeline.
        targets (np.ndarray): ``(N, C)`` bool, the class has a non-difficult object.
        difficult (np.ndarray): ``(N, C)`` bool, the class has only difficult objects.
    """

    def __init__(self, dataset, targets: np.ndarray,
                 difficult: np.ndarray) -> None:
        self.dataset = dataset
        self.targets = targets
        self.difficult = difficult
        self.classes = tuple(dataset.metainfo['classes'])
        self.img_paths = [
            dataset.get_data_info(i)['img_path'] for i in range(len(dataset))
        ]


def _image_set(voc_root: str, task: str, split: str) -> str:
    """``ImageSets/<task>/<split>.txt`` relative to ``voc_root``; refused when missing."""
    image_set = osp.join('ImageSets', task, f'{split}.txt')
    if not osp.isfile(osp.join(voc_root, image_set)):
        raise FileNotFoundError(
            f'image set {osp.join(voc_root, image_set)!r} does not exist; '
            'expected the VOC layout <root>/ImageSets/{Main,Segmentation}/'
            '<split>.txt (one image id per line). Set --voc-root to the '
            'VOC2007 (or VOC2012) folder')
    return image_set


def _object_names(voc_root: str, image_set: str) -> set:
    """Class names of every object in the split (mmpretrain's VOC skips unknown names)."""
    from mmengine import list_from_file
    names = set()
    for img_id in list_from_file(osp.join(voc_root, image_set)):
        xml_path = osp.join(voc_root, 'Annotations', f'{img_id.strip()}.xml')
        if not osp.isfile(xml_path):
            raise FileNotFoundError(f'annotation {xml_path!r} does not exist')
        names |= {o.find('name').text.strip()
                  for o in ET.parse(xml_path).getroot().findall('object')}
    return names


def load_voc_classification(voc_root: str,
                            split: str,
                            classes: Optional[Sequence[str]] = None,
                            pipeline: Sequence[dict] = ()
                            ) -> VOCClassificationSplit:
    """Read one VOC classification split with mmpretrain's ``VOC`` dataset.

    Args:
        voc_root (str): The ``VOC2007`` (or ``VOC2012``) folder.
        split (str): Image set name, e.g. ``'trainval'`` or ``'test'``.
        classes (Sequence[str], optional): Column order. Defaults to the 20 VOC classes when
            every object name is one of them, else the sorted names found in this split.
        pipeline (Sequence[dict]): Transforms of the dataset. Defaults to none.

    Returns:
        VOCClassificationSplit: The dataset, targets and difficult flags.
    """
    from mmpretrain.datasets.categories import VOC2007_CATEGORIES
    from mmpretrain.registry import DATASETS
    image_set = _image_set(voc_root, 'Main', split)
    names = _object_names(voc_root, image_set)
    if classes is None:
        classes = VOC2007_CATEGORIES if names <= set(
            VOC2007_CATEGORIES) else sorted(names)
    unknown = sorted(names - set(classes))
    if unknown:
        raise ValueError(f'split {split!r} has objects of classes {unknown} '
                         f'that are not among {list(classes)}')
    dataset = DATASETS.build(
        dict(
            type='VOC',
            data_root=voc_root,
            split='',  # any image set name, not only VOC's four
            image_set_path=image_set,
            metainfo=dict(classes=tuple(classes)),
            pipeline=list(pipeline)))
    targets = np.zeros((len(dataset), len(classes)), bool)
    difficult = np.zeros_like(targets)
    for row in range(len(dataset)):
        info = dataset.get_data_info(row)
        targets[row, info['gt_label']] = True
        difficult[row, info['gt_label_difficult']] = True
    difficult &= ~targets  # "difficult" only where no easy object of the class exists
    return VOCClassificationSplit(dataset, targets, difficult)


def voc_segmentation_dataset(voc_root: str,
                             split: str,
                             pipeline: Sequence[dict],
                             max_images: Optional[int] = None):
    """mmseg's ``PascalVOCDataset`` of ``ImageSets/Segmentation/<split>.txt``.

    Args:
        voc_root (str): The ``VOC2012`` folder.
        split (str): Image set name, e.g. ``'train'``.
        pipeline (Sequence[dict]): Transforms (scoped names, e.g. ``'mmseg.LoadAnnotations'``).
        max_images (int, optional): Keep only the first ones. Defaults to all.
    """
    from mmseg.datasets import PascalVOCDataset
    return PascalVOCDataset(
        ann_file=_image_set(voc_root, 'Segmentation', split),
        data_root=voc_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        indices=max_images,
        pipeline=list(pipeline))
