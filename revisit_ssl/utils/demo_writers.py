"""Writers that store demo scenes in the dataset layouts the configs expect.

A writer receives every drawn :class:`~revisit_ssl.utils.demo_scenes.Scene` of every split and
writes it in one layout. Add a layout by subclassing :class:`DemoWriter` and listing it in
:data:`DEMO_WRITERS`; ``tools/make_demo_data.py --formats`` then offers it.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Type

import cv2
import numpy as np

from .demo_scenes import DEMO_CLASSES, Scene, semantic_map
from .palette import voc_palette

__all__ = [
    'DemoWriter', 'ClassificationFolderWriter', 'VOCWriter', 'CityscapesWriter',
    'NYUDWriter', 'DAVISWriter', 'DEMO_WRITERS', 'VOC_DET_CLASSES', 'voc_palette', 'demo_depth'
]


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


# ---------------------------------------------------------------------------------------------
# Downstream layouts (PASCAL VOC, Cityscapes, NYUD-v2) for the mmseg / mmdet transfer configs.
# Every layout labels demo class ``c`` (index into DEMO_CLASSES) with the ``c``-th class of the
# real dataset after its background / first class, i.e. ``semantic_map`` values are kept:
#   VOC segmentation : 0 background, c + 1 -> aeroplane, bicycle, bird, boat, bottle, bus
#   VOC detection    : box name VOC_DET_CLASSES[c] -> aeroplane ... bus (label c)
#   Cityscapes       : trainId 0 road (background), c + 1 -> sidewalk, building, wall, fence,
#                      pole, traffic light; 255 on object outlines (void)
#   NYUD-v2 (40)     : file value 1 wall (background), c + 2 -> floor, cabinet, bed, chair,
#                      sofa, table; 0 (unlabelled) on object outlines
# ---------------------------------------------------------------------------------------------
#: PASCAL VOC's 20 object classes, detection label order (mmdet ``VOCDataset``).
VOC_DET_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                   'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
                   'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
                   'sofa', 'train', 'tvmonitor')

#: Visible area (pixels) below which a demo object is marked ``difficult`` in VOC XMLs, the
#: way VOC flags objects too small or occluded to recognise; mmdet ignores them.
VOC_DIFFICULT_AREA = 25


def _write_lines(path: str, lines: List[str]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(''.join(f'{line}\n' for line in lines))


class VOCWriter(DemoWriter):
    """PASCAL VOC 2012 (+ SBD "aug") layout for mmseg and mmdet::

        out_dir/VOCdevkit/VOC2012/
        ├── JPEGImages/<id>.jpg
        ├── SegmentationClass/<id>.png      # palette PNG, 255 on object outlines
        ├── SegmentationClassAug/<id>.png   # grey index PNG (train ids), like mmseg's SBD
        ├── Annotations/<id>.xml            # boxes, VOC names, 1-based inclusive pixels
        └── ImageSets/
            ├── Segmentation/{train,aug,trainaug,val,trainval}.txt
            └── Main/{train,val,trainval,test}.txt

    The first half of the demo train images forms ``train.txt`` (VOC's own 1,464) and the
    rest ``aug.txt`` (the SBD extras), so mmseg's ``pascal_voc12_aug`` concatenation reads
    every train image once; ``trainaug.txt`` lists them all. ``Main/test.txt`` repeats the
    val ids so the same tree can stand in for VOC2007 (whose evaluation split is ``test``).
    Ids are ``<split>_NNNNN``.
    """
    name = 'voc'

    def __init__(self, out_dir: str) -> None:
        super().__init__(out_dir)
        self.root = osp.join(out_dir, 'VOCdevkit', 'VOC2012')
        self.ids = {'train': [], 'val': []}
        for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                    'Annotations'):
            os.makedirs(osp.join(self.root, sub), exist_ok=True)

    def add(self, split: str, index: int, scene: Scene) -> None:
        from PIL import Image
        img_id = f'{split}_{index:05d}'
        self.ids[split].append(img_id)
        cv2.imwrite(
            osp.join(self.root, 'JPEGImages', f'{img_id}.jpg'), scene.image,
            [cv2.IMWRITE_JPEG_QUALITY, 95])
        png = Image.fromarray(semantic_map(scene, ignore_border=True), 'P')
        png.putpalette(voc_palette())
        png.save(osp.join(self.root, 'SegmentationClass', f'{img_id}.png'))
        if split == 'train':
            cv2.imwrite(
                osp.join(self.root, 'SegmentationClassAug', f'{img_id}.png'),
                semantic_map(scene))
        self._write_xml(img_id, scene)

    def _write_xml(self, img_id: str, scene: Scene) -> None:
        h, w = scene.image.shape[:2]
        root = ET.Element('annotation')
        ET.SubElement(root, 'folder').text = 'VOC2012'
        ET.SubElement(root, 'filename').text = f'{img_id}.jpg'
        size = ET.SubElement(root, 'size')
        for tag, value in (('width', w), ('height', h), ('depth', 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(root, 'segmented').text = '1'
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.bbox  # 0-based, x2 / y2 exclusive
            node = ET.SubElement(root, 'object')
            ET.SubElement(node, 'name').text = VOC_DET_CLASSES[obj.label]
            ET.SubElement(node, 'pose').text = 'Unspecified'
            ET.SubElement(node, 'truncated').text = '0'
            ET.SubElement(node, 'difficult').text = str(
                int(obj.area < VOC_DIFFICULT_AREA))
            box = ET.SubElement(node, 'bndbox')
            # VOC pixels are 1-based and inclusive: [x1 + 1, x2] covers 0-based [x1, x2)
            for tag, value in (('xmin', x1 + 1), ('ymin', y1 + 1),
                               ('xmax', x2), ('ymax', y2)):
                ET.SubElement(box, tag).text = str(value)
        ET.ElementTree(root).write(
            osp.join(self.root, 'Annotations', f'{img_id}.xml'))

    def finish(self) -> None:
        train, val = self.ids['train'], self.ids['val']
        half = (len(train) + 1) // 2
        seg = osp.join(self.root, 'ImageSets', 'Segmentation')
        main = osp.join(self.root, 'ImageSets', 'Main')
        lists = {
            osp.join(seg, 'train.txt'): train[:half],
            osp.join(seg, 'aug.txt'): train[half:],
            osp.join(seg, 'trainaug.txt'): train,
            osp.join(seg, 'val.txt'): val,
            osp.join(seg, 'trainval.txt'): train + val,
            osp.join(main, 'train.txt'): train,
            osp.join(main, 'val.txt'): val,
            osp.join(main, 'trainval.txt'): train + val,
            osp.join(main, 'test.txt'): val,
        }
        for path, ids in lists.items():
            _write_lines(path, ids)


class CityscapesWriter(DemoWriter):
    """Cityscapes-like tree (mmseg ``CityscapesDataset``), one city called ``demo``::

        out_dir/cityscapes/
        ├── leftImg8bit/{train,val}/demo/demo_NNNNNN_000019_leftImg8bit.png
        └── gtFine/{train,val}/demo/demo_NNNNNN_000019_gtFine_labelTrainIds.png

    Label maps hold train ids (0 road for the background, ``c + 1`` for demo class ``c``,
    255 on object outlines), as written by mmseg's ``tools/dataset_converters/cityscapes.py``.
    """
    name = 'cityscapes'

    def __init__(self, out_dir: str) -> None:
        super().__init__(out_dir)
        self.root = osp.join(out_dir, 'cityscapes')

    def add(self, split: str, index: int, scene: Scene) -> None:
        stem = f'demo_{index:06d}_000019'
        img_dir = osp.join(self.root, 'leftImg8bit', split, 'demo')
        ann_dir = osp.join(self.root, 'gtFine', split, 'demo')
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), scene.image)
        cv2.imwrite(
            osp.join(ann_dir, f'{stem}_gtFine_labelTrainIds.png'),
            semantic_map(scene, ignore_border=True))


def demo_depth(scene: Scene) -> np.ndarray:
    """A plausible indoor depth map (metres) for a demo scene.

    The background is a floor receding from 2 m (bottom row) to 6 m (top row); every object
    stands on it, at the floor depth of its lowest visible row, so depth is predictable from
    the image. Object outlines get 0 (no measurement), like the holes of a Kinect.
    """
    h, w = scene.image.shape[:2]
    rows = np.linspace(6.0, 2.0, h, dtype=np.float32)
    depth = np.repeat(rows[:, None], w, axis=1)
    outline = np.zeros((h, w), bool)
    for obj in scene.objects:
        depth[obj.mask] = rows[obj.bbox[3] - 1]
        m = obj.mask.astype(np.uint8)
        outline |= (cv2.dilate(m, np.ones((3, 3), np.uint8)) - m).astype(bool)
    depth[outline] = 0.
    return depth


class NYUDWriter(DemoWriter):
    """NYUD-v2 layout read by ``revisit_ssl.downstream.NYUDv2Dataset`` / ``NYUDv2DepthDataset``::

        out_dir/NYUDv2/
        ├── images/<id>.jpg
        ├── segmentation/<id>.png   # uint8: 0 unlabelled (outlines), 1 wall (background),
        │                           # c + 2 for demo class c (floor, cabinet, ...)
        ├── depth/<id>.png          # uint16 millimetres from demo_depth, 0 = no measurement
        └── gt_sets/{train,val}.txt

    Ids are ``<split>_NNNNN``.
    """
    name = 'nyud'

    def __init__(self, out_dir: str) -> None:
        super().__init__(out_dir)
        self.root = osp.join(out_dir, 'NYUDv2')
        self.ids = {'train': [], 'val': []}
        for sub in ('images', 'segmentation', 'depth'):
            os.makedirs(osp.join(self.root, sub), exist_ok=True)

    def add(self, split: str, index: int, scene: Scene) -> None:
        img_id = f'{split}_{index:05d}'
        self.ids[split].append(img_id)
        cv2.imwrite(
            osp.join(self.root, 'images', f'{img_id}.jpg'), scene.image,
            [cv2.IMWRITE_JPEG_QUALITY, 95])
        seg = semantic_map(scene, ignore_border=True).astype(np.int32) + 1
        seg[seg == 256] = 0  # outlines (255) -> unlabelled
        cv2.imwrite(
            osp.join(self.root, 'segmentation', f'{img_id}.png'),
            seg.astype(np.uint8))
        depth_mm = np.round(demo_depth(scene) * 1000).astype(np.uint16)
        cv2.imwrite(osp.join(self.root, 'depth', f'{img_id}.png'), depth_mm)

    def finish(self) -> None:
        for split, ids in self.ids.items():
            _write_lines(osp.join(self.root, 'gt_sets', f'{split}.txt'), ids)


class DAVISWriter(DemoWriter):
    """DAVIS-2017's layout under ``out_dir/DAVIS``, for ``davis_label_propagation.py``::

        DAVIS/JPEGImages/480p/<seq>/00000.jpg ...
        DAVIS/Annotations/480p/<seq>/00000.png ...   palette PNGs of object ids
        DAVIS/ImageSets/2017/val.txt

    Videos need motion, so this writer ignores the scenes and writes the moving boxes of
    :mod:`revisit_ssl.utils.davis_demo` (two sequences, 8 frames of 96 x 128) in ``finish``.
    """
    name = 'davis'
    num_frames = 8
    scale = 4

    def add(self, split: str, index: int, scene: Scene) -> None:
        """Scenes are not used (see the class docstring)."""

    def finish(self) -> None:
        # imported here: it reaches the evaluation package's PNG writer
        from .davis_demo import make_davis_demo
        make_davis_demo(osp.join(self.out_dir, 'DAVIS'), num_frames=self.num_frames,
                        scale=self.scale)


#: Layouts ``tools/make_demo_data.py`` can write, by name.
DEMO_WRITERS: Dict[str, Type[DemoWriter]] = {
    writer.name: writer
    for writer in (ClassificationFolderWriter, VOCWriter, CityscapesWriter,
                   NYUDWriter, DAVISWriter)
}
