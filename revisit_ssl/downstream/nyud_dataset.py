"""NYUD-v2 semantic segmentation with the 40 classes of Gupta et al.

mmseg 1.2.2 ships ``NYUDataset`` for depth only (its classes are scene types); this dataset
reads the 40-class labels of the common 795 / 654 split.
"""
from typing import List, Tuple

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from revisit_ssl.utils.palette import voc_colour_map

__all__ = ['NYUD40_CLASSES', 'NYUDv2Dataset']

#: The 40 classes of Gupta et al., "Perceptual Organization and Recognition of Indoor Scenes
#: from RGB-D Images" (CVPR 2013), in label order 1..40 (0 is "unlabelled").
NYUD40_CLASSES: Tuple[str, ...] = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
    'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves',
    'curtain', 'dresser', 'pillow', 'mirror', 'floor mat', 'clothes',
    'ceiling', 'books', 'refridgerator', 'television', 'paper', 'towel',
    'shower curtain', 'box', 'whiteboard', 'person', 'night stand', 'toilet',
    'sink', 'lamp', 'bathtub', 'bag', 'otherstructure', 'otherfurniture',
    'otherprop')


@DATASETS.register_module()
class NYUDv2Dataset(BaseSegDataset):
    """NYUD-v2, 40-class semantic segmentation (795 train / 654 val images).

    Expected layout (``data_root``, e.g. ``data/NYUDv2``)::

        data/NYUDv2/
        ├── images/<id>.jpg           # RGB, 640 x 480
        ├── segmentation/<id>.png     # uint8: 0 = unlabelled, 1..40 = NYUD40_CLASSES
        ├── depth/<id>.png            # uint16 millimetres, 0 = no measurement (depth task)
        └── gt_sets/
            ├── train.txt             # 795 ids, one per line, no extension
            └── val.txt               # 654 ids

    Label files store ``0`` for unlabelled pixels and ``1..40`` for the classes, as in the
    official ``labels40`` release; ``reduce_zero_label=True`` (the default) turns them into
    ``255`` (ignored) and ``0..39``.

    Args:
        ann_file (str): Id list, e.g. ``'gt_sets/train.txt'``.
        img_suffix (str): Image suffix. Defaults to ``'.jpg'``.
        seg_map_suffix (str): Label suffix. Defaults to ``'.png'``.
        reduce_zero_label (bool): Map label 0 to ignore and shift the rest down by one.
            Defaults to True.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(classes=NYUD40_CLASSES, palette=voc_colour_map(41)[1:])

    def __init__(self,
                 ann_file: str,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = True,
                 **kwargs) -> None:
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
