"""The linear-classification transfer datasets of the kNN-MoCo paper's Table 2, read from
their standard on-disk layouts with torchvision's own dataset classes (``download=False``).

The splits are those of the many-shot linear protocol of `Ericsson et al., How Well Do
Self-Supervised Models Transfer?, CVPR 2021 <https://arxiv.org/abs/2011.13377>`_ (after
Kornblith et al. 2019), which :func:`~revisit_ssl.evaluation.logistic_probe` implements:

* a dataset with an official validation split (VOC2007) chooses the L2 strength by fitting on
  ``train`` and scoring ``val``, then refits on ``trainval`` = train + val and scores ``test``;
* the others hold out a random 20% of the training split to choose the strength, then refit on
  the whole training split and score the test split.

Per dataset (``root`` is the folder the torchvision class takes):

=============  =============================================  ===============  ===========
name           torchvision class and layout under ``root``      fit split        test split
=============  =============================================  ===============  ===========
cifar10        ``CIFAR10``: ``cifar-10-batches-py/``             train (50,000)   test
stanford_cars  ``StanfordCars``: ``stanford_cars/``              train            test
food101        ``Food101``: ``food-101/{images,meta}``           train            test
oxford_pets    ``OxfordIIITPet``: ``oxford-iiit-pet/``           trainval         test
places365      ``Places365``: file lists + ``data_*_standard/``  train-standard   val
sun397         ``SUN397``: ``SUN397/`` + partition files         Training_NN      Testing_NN
voc07          ``VOCDetection``: ``VOCdevkit/VOC2007/``          train (+ val)    test
=============  =============================================  ===============  ===========

Places365's test labels are not public, so its official ``val`` split is the test split (as in
the Places365 papers). torchvision's ``SUN397`` has no split: it lists every image. The
standard protocol uses the first of the ten official partitions (``Training_01.txt`` /
``Testing_01.txt``, 50 + 50 images per class, from ``Partitions.zip`` of the SUN397 site);
they are read from ``root/SUN397/`` or ``root/SUN397/Partitions/`` and a missing file is an
error, not a silent random split. VOC07 is multi-label: it is read with mmpretrain's ``VOC``
(:func:`~revisit_ssl.evaluation.load_voc_classification`, the ``difficult`` flags included) from
``root/VOCdevkit/VOC2007``, the folder torchvision's ``VOCDetection(root, year='2007')`` reads.
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    'TRANSFER_DATASETS', 'DATASET_LAYOUTS', 'TorchvisionClassification',
    'load_transfer_split', 'transfer_splits', 'voc07_root'
]

#: ``--dataset`` names of Table 2.
TRANSFER_DATASETS = ('cifar10', 'stanford_cars', 'food101', 'oxford_pets',
                     'places365', 'sun397', 'voc07')

#: The on-disk layout each torchvision class expects under ``--data-root``.
DATASET_LAYOUTS = {
    'cifar10':
    'DIR/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} '
    '(the python pickle batches of cifar-10-python.tar.gz)',
    'stanford_cars':
    'DIR/stanford_cars/{cars_train/,cars_test/,devkit/cars_train_annos.mat,'
    'devkit/cars_meta.mat,cars_test_annos_withlabels.mat}',
    'food101':
    'DIR/food-101/images/<class>/<id>.jpg and DIR/food-101/meta/'
    '{train,test}.json',
    'oxford_pets':
    'DIR/oxford-iiit-pet/images/<Breed>_<n>.jpg and DIR/oxford-iiit-pet/'
    'annotations/{trainval,test}.txt',
    'places365':
    'DIR/{categories_places365.txt,places365_train_standard.txt,'
    'places365_val.txt} and DIR/data_large_standard/ (DIR/data_256_standard/'
    ' with --places365-small), DIR/val_large/ (val_256/)',
    'sun397':
    'DIR/SUN397/ClassName.txt, DIR/SUN397/<letter>/<class>/sun_*.jpg and the '
    'official partition files DIR/SUN397/[Partitions/]{Training,Testing}_NN'
    '.txt',
    'voc07':
    'DIR/VOCdevkit/VOC2007/{ImageSets/Main/<split>.txt,Annotations/<id>.xml,'
    'JPEGImages/<id>.jpg}',
}


def _layout_error(name: str, root: str, err: Exception) -> FileNotFoundError:
    return FileNotFoundError(
        f'--dataset {name}: no readable dataset under --data-root {root!r} '
        f'({type(err).__name__}: {err}). Expected {DATASET_LAYOUTS[name]}, '
        f'with DIR = --data-root, the root that torchvision reads with '
        'download=False (this tool downloads nothing)')


class TorchvisionClassification(torch.utils.data.Dataset):
    """A torchvision classification dataset behind mmpretrain's evaluation pipeline.

    torchvision reads each sample (its own file layout and decoding, a PIL image); the image
    is handed to the pipeline as an OpenCV-order (BGR) array, as ``LoadImageFromFile`` would,
    so the config's ``data_preprocessor`` channel swap and normalisation apply unchanged.

    Args:
        dataset (torch.utils.data.Dataset): torchvision dataset returning ``(PIL image,
            int label)``.
        labels (Sequence[int]): Its labels, read without decoding the images.
        classes (Sequence[str]): Class names, index = label.
        pipeline (Sequence[dict]): mmpretrain transforms; a leading ``LoadImageFromFile`` is
            dropped (torchvision loads the image).
        indices (Sequence[int], optional): Keep only these samples (a partition).
    """

    def __init__(self,
                 dataset,
                 labels: Sequence[int],
                 classes: Sequence[str],
                 pipeline: Sequence[dict],
                 indices: Optional[Sequence[int]] = None) -> None:
        from mmcv.transforms import Compose
        from mmengine.registry import DefaultScope
        self.dataset = dataset
        self.indices = np.arange(len(labels)) if indices is None else \
            np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)[self.indices]
        self.metainfo = dict(classes=tuple(classes))
        steps = [
            dict(t) for t in pipeline
            if str(t.get('type', '')).split('.')[-1] != 'LoadImageFromFile'
        ]
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.pipeline = Compose(steps)

    def __len__(self) -> int:
        return len(self.indices)

    def get_data_info(self, idx: int) -> dict:
        return dict(gt_label=int(self.labels[idx]))

    def __getitem__(self, idx: int) -> dict:
        image, label = self.dataset[int(self.indices[idx])]
        img = np.ascontiguousarray(np.asarray(image.convert('RGB'))[..., ::-1])
        return self.pipeline(
            dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                 gt_label=int(label)))


def _sun397_partition(data_dir: str, split: str, number: int) -> str:
    name = f'{split}_{number:02d}.txt'
    for folder in (data_dir, osp.join(data_dir, 'Partitions')):
        if osp.isfile(osp.join(folder, name)):
            return osp.join(folder, name)
    raise FileNotFoundError(
        f'--dataset sun397: the official partition file {name} is in neither '
        f'{data_dir!r} nor {osp.join(data_dir, "Partitions")!r}; torchvision\'s '
        'SUN397 has no train/test split, so unpack Partitions.zip of the SUN397 '
        'site (Training_01.txt ... Testing_10.txt) there (--sun397-partition '
        'picks one of the ten)')


def _open(name: str, root: str, split: str, small: bool,
          sun397_partition: int) -> Tuple[object, List[int], List[str],
                                          Optional[np.ndarray]]:
    """``(torchvision dataset, labels, classes, indices)`` of one split."""
    from torchvision import datasets as tvd
    if name == 'cifar10':
        ds = tvd.CIFAR10(root, train=split == 'train', download=False)
        return ds, list(ds.targets), list(ds.classes), None
    if name == 'stanford_cars':
        ds = tvd.StanfordCars(root, split=split, download=False)
        return ds, [t for _, t in ds._samples], list(ds.classes), None
    if name == 'food101':
        ds = tvd.Food101(root, split=split, download=False)
        return ds, list(ds._labels), list(ds.classes), None
    if name == 'oxford_pets':
        ds = tvd.OxfordIIITPet(root, split=split, download=False)
        return ds, list(ds._labels), list(ds.classes), None
    if name == 'places365':
        ds = tvd.Places365(root, split=split, small=small, download=False)
        if not osp.isdir(ds.images_dir):
            raise FileNotFoundError(f'image folder {ds.images_dir!r} missing')
        return ds, list(ds.targets), list(ds.classes), None
    if name == 'sun397':
        ds = tvd.SUN397(root, download=False)
        data_dir = str(ds._data_dir)
        part = _sun397_partition(data_dir, split, sun397_partition)
        where = {
            '/' + osp.relpath(str(p), data_dir).replace(osp.sep, '/'): i
            for i, p in enumerate(ds._image_files)
        }
        with open(part) as f:
            wanted = [line.strip() for line in f if line.strip()]
        missing = [p for p in wanted if p not in where]
        if missing:
            raise FileNotFoundError(
                f'--dataset sun397: {len(missing)} images of {part} are not '
                f'under {data_dir!r}, e.g. {missing[:3]}')
        return ds, list(ds._labels), list(ds.classes), np.array(
            [where[p] for p in wanted])
    raise ValueError(f'unknown dataset {name!r}; choose from '
                     f'{TRANSFER_DATASETS}')


#: ``(fit split, test split)`` names passed to each torchvision class.
_SPLITS = {
    'cifar10': ('train', 'test'),
    'stanford_cars': ('train', 'test'),
    'food101': ('train', 'test'),
    'oxford_pets': ('trainval', 'test'),
    'places365': ('train-standard', 'val'),
    'sun397': ('Training', 'Testing'),
}


def load_transfer_split(name: str,
                        root: str,
                        split: str,
                        pipeline: Sequence[dict],
                        small: bool = False,
                        sun397_partition: int = 1
                        ) -> TorchvisionClassification:
    """One split of a single-label Table 2 dataset behind the evaluation pipeline.

    Args:
        name (str): One of :data:`TRANSFER_DATASETS` except ``'voc07'``.
        root (str): The root the torchvision class takes (``--data-root``).
        split (str): The torchvision split name (see :data:`_SPLITS`).
        pipeline (Sequence[dict]): mmpretrain evaluation transforms.
        small (bool): Places365's 256 x 256 images. Defaults to False.
        sun397_partition (int): Official SUN397 partition 1..10. Defaults to 1.

    Raises:
        FileNotFoundError: The root does not hold the layout; the message names
            ``--data-root`` and the expected layout.
    """
    if not osp.isdir(root):
        raise _layout_error(name, root, FileNotFoundError('no such folder'))
    try:
        ds, labels, classes, indices = _open(name, root, split, small,
                                             sun397_partition)
    except FileNotFoundError as err:
        if '--dataset' in str(err):
            raise
        raise _layout_error(name, root, err) from None
    except RuntimeError as err:  # torchvision's "Dataset not found"
        raise _layout_error(name, root, err) from None
    return TorchvisionClassification(ds, labels, classes, pipeline, indices)


def transfer_splits(name: str,
                    root: str,
                    pipeline: Sequence[dict],
                    small: bool = False,
                    sun397_partition: int = 1
                    ) -> Tuple[TorchvisionClassification,
                               TorchvisionClassification, dict]:
    """The fit and test splits of a single-label Table 2 dataset.

    The L2 strength is then chosen on a 20% holdout of the fit split
    (:func:`~revisit_ssl.evaluation.logistic_probe` without ``val_x``).

    Returns:
        tuple: ``(fit, test, description)``.
    """
    if name == 'voc07':
        raise ValueError('voc07 is multi-label: use voc07_root()')
    fit_split, test_split = _SPLITS[name]
    if name == 'sun397':
        fit_split = f'Training_{sun397_partition:02d}'
        test_split = f'Testing_{sun397_partition:02d}'
    fit = load_transfer_split(name, root, _SPLITS[name][0], pipeline, small,
                              sun397_partition)
    test = load_transfer_split(name, root, _SPLITS[name][1], pipeline, small,
                               sun397_partition)
    if fit.metainfo['classes'] != test.metainfo['classes']:
        raise ValueError(f'--dataset {name}: the {fit_split} and {test_split} '
                         'splits list different classes')
    info = dict(dataset=name, data_root=root, train_split=fit_split,
                test_split=test_split,
                selection_split=f'random 20% of {fit_split}')
    if name == 'places365':
        info['images'] = '256 x 256' if small else 'large'
    return fit, test, info


def voc07_root(root: str) -> str:
    """``root/VOCdevkit/VOC2007``, where torchvision's ``VOCDetection(root, year='2007')``
    reads; refused with the layout when it is not there."""
    voc = osp.join(root, 'VOCdevkit', 'VOC2007')
    if not osp.isdir(voc):
        raise _layout_error('voc07', root,
                            FileNotFoundError(f'{voc!r} does not exist'))
    return voc
