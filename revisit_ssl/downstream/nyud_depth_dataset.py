"""NYUD-v2 depth estimation on the same layout and split as :class:`NYUDv2Dataset`."""
import os.path as osp
from typing import List

import mmengine
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

__all__ = ['NYUDv2DepthDataset']


@DATASETS.register_module()
class NYUDv2DepthDataset(BaseSegDataset):
    """NYUD-v2 depth maps, read from the layout documented in :class:`NYUDv2Dataset`.

    mmseg's own ``NYUDataset`` wants ``images/<split>/`` and ``annotations/<split>/`` folders;
    this one reads the id lists of the 40-class split so that segmentation and depth use the
    same 795 / 654 images. Depth files are uint16 PNGs in millimetres (``0`` = no
    measurement); load them with ``LoadDepthAnnotation(depth_rescale_factor=1e-3)`` to get
    metres.

    Args:
        ann_file (str): Id list, e.g. ``'gt_sets/train.txt'``.
        data_prefix (dict): ``img_path`` and ``depth_map_path`` folders.
            Defaults to ``dict(img_path='images', depth_map_path='depth')``.
        img_suffix (str): Image suffix. Defaults to ``'.jpg'``.
        depth_map_suffix (str): Depth suffix. Defaults to ``'.png'``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(classes=('depth', ), palette=[[255, 255, 255]])

    def __init__(self,
                 ann_file: str,
                 data_prefix: dict = dict(
                     img_path='images', depth_map_path='depth'),
                 img_suffix: str = '.jpg',
                 depth_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            ann_file=ann_file,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=depth_map_suffix,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """One ``dict(img_path, depth_map_path)`` per id of ``ann_file``."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'NYUD-v2 id list {self.ann_file!r} not found; see the docstring of '
                'NYUDv2Dataset for the expected layout.')
        img_dir = self.data_prefix['img_path']
        depth_dir = self.data_prefix['depth_map_path']
        data_list = []
        for line in mmengine.list_from_file(
                self.ann_file, backend_args=self.backend_args):
            name = line.strip()
            if not name:
                continue
            data_list.append(
                dict(
                    img_path=osp.join(img_dir, name + self.img_suffix),
                    depth_map_path=osp.join(depth_dir,
                                            name + self.seg_map_suffix),
                    seg_fields=[]))
        return data_list
