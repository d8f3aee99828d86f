"""Writers that store demo scenes in the dataset layouts the configs expect.

A writer receives every drawn :class:`~revisit_ssl.utils.demo_data.Scene` of every split and
writes it in one layout. Add a layout by subclassing :class:`DemoWriter` and listing it in
:data:`DEMO_WRITERS`; ``tools/make_demo_data.py --formats`` then offers it.
"""
import os
import os.path as osp
from typing import Dict, Type

import cv2

from .demo_data import DEMO_CLASSES, Scene

__all__ = ['DemoWriter', 'ClassificationFolderWriter', 'DEMO_WRITERS']


class DemoWriter:
    """Base class: one dataset layout under ``out_dir/<name>``.

    Args:
        out_dir (str): Root of the demo data; the writer uses ``out_dir`` itself or a sub-folder.
    """
    name: str = ''

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def add(self, split: str, index: int, scene: Scene) -> None:
        """Store one scene of ``split`` ('train' or 'val')."""
        raise NotImplementedError

    def finish(self) -> None:
        """Write index files once every scene was added."""


class ClassificationFolderWriter(DemoWriter):
    """mmpretrain ``CustomDataset`` layout, labelled by the dominant object::

        out_dir/train/<class>/train_00000.jpg
        out_dir/val/<class>/val_00000.jpg

    Pretraining reads ``train/`` without labels; kNN / linear probes read both with labels.
    """
    name = 'cls'

    def add(self, split: str, index: int, scene: Scene) -> None:
        folder = osp.join(self.out_dir, split,
                          DEMO_CLASSES[scene.dominant_label])
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(
            osp.join(folder, f'{split}_{index:05d}.jpg'), scene.image,
            [cv2.IMWRITE_JPEG_QUALITY, 95])


#: Layouts ``tools/make_demo_data.py`` can write, by name.
DEMO_WRITERS: Dict[str, Type[DemoWriter]] = {
    ClassificationFolderWriter.name: ClassificationFolderWriter,
}
