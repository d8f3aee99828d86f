"""Demo writers 'voc', 'cityscapes', 'nyud': files match the drawn scenes, and mmseg / mmdet
datasets read them back with the documented class mapping."""
import os.path as osp
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from revisit_ssl.utils.demo_data import DEMO_CLASSES, draw_scene, semantic_map
from revisit_ssl.utils.demo_writers import (DEMO_WRITERS, VOC_DET_CLASSES,
                                            CityscapesWriter, NYUDWriter,
                                            VOCWriter, demo_depth)

NUM_TRAIN, NUM_VAL = 5, 3


def _scenes(seed=0):
    scenes = {}
    for split_id, (split, num) in enumerate((('train', NUM_TRAIN),
                                             ('val', NUM_VAL))):
        for i in range(num):
            rng = np.random.default_rng([seed, split_id, i])
            size = tuple(int(v) for v in rng.integers(64, 97, 2))
            scenes[split, i] = draw_scene(rng, size, label=i % len(DEMO_CLASSES))
    return scenes


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('writers'))
    scenes = _scenes()
    writers = [cls(root) for cls in (VOCWriter, CityscapesWriter, NYUDWriter)]
    for (split, i), scene in scenes.items():
        for w in writers:
            w.add(split, i, scene)
    for w in writers:
        w.finish()
    return root, scenes


def test_registered():
    assert {'cls', 'voc', 'cityscapes', 'nyud'} <= set(DEMO_WRITERS)
    # the mapping the docs promise: demo class c -> the c-th VOC object class
    assert VOC_DET_CLASSES[:len(DEMO_CLASSES)] == ('aeroplane', 'bicycle',
                                                   'bird', 'boat', 'bottle',
                                                   'bus')


def _read_list(path):
    with open(path) as f:
        return f.read().split()


def test_voc_files(written):
    from PIL import Image
    root, scenes = written
    voc = osp.join(root, 'VOCdevkit', 'VOC2012')
    seg_sets = osp.join(voc, 'ImageSets', 'Segmentation')
    train = [f'train_{i:05d}' for i in range(NUM_TRAIN)]
    val = [f'val_{i:05d}' for i in range(NUM_VAL)]
    first = _read_list(osp.join(seg_sets, 'train.txt'))
    aug = _read_list(osp.join(seg_sets, 'aug.txt'))
    assert first + aug == train and not set(first) & set(aug) and first
    assert _read_list(osp.join(seg_sets, 'trainaug.txt')) == train
    assert _read_list(osp.join(seg_sets, 'val.txt')) == val
    main = osp.join(voc, 'ImageSets', 'Main')
    assert _read_list(osp.join(main, 'trainval.txt')) == train + val
    assert _read_list(osp.join(main, 'test.txt')) == val

    for (split, i), scene in scenes.items():
        img_id = f'{split}_{i:05d}'
        png = Image.open(osp.join(voc, 'SegmentationClass', f'{img_id}.png'))
        assert png.mode == 'P'  # palette PNG, as VOC ships them
        assert png.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        expected = semantic_map(scene, ignore_border=True)
        assert np.array_equal(np.array(png), expected)
        assert (expected == 255).any()  # outlines are void
        aug_png = osp.join(voc, 'SegmentationClassAug', f'{img_id}.png')
        if split == 'train':
            assert np.array_equal(
                cv2.imread(aug_png, cv2.IMREAD_UNCHANGED), semantic_map(scene))
        else:
            assert not osp.exists(aug_png)
        # XML boxes: 1-based inclusive VOC pixels of the visible masks
        root_xml = ET.parse(osp.join(voc, 'Annotations', f'{img_id}.xml')).getroot()
        h, w = scene.image.shape[:2]
        assert int(root_xml.find('size/width').text) == w
        assert int(root_xml.find('size/height').text) == h
        objects = root_xml.findall('object')
        assert len(objects) == len(scene.objects)
        for node, obj in zip(objects, scene.objects):
            assert node.find('name').text == VOC_DET_CLASSES[obj.label]
            box = [int(node.find(f'bndbox/{t}').text)
                   for t in ('xmin', 'ymin', 'xmax', 'ymax')]
            ys, xs = np.nonzero(obj.mask)
            assert box == [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
            assert node.find('difficult').text == str(int(obj.area < 25))


def test_voc_read_by_mmseg_and_mmdet(written):
    import mmdet.datasets  # noqa: F401  registers VOCDataset
    from mmdet.registry import DATASETS as DET_DATASETS
    from mmseg.datasets import PascalVOCDataset
    from mmseg.datasets.transforms import LoadAnnotations
    root, scenes = written
    voc = osp.join(root, 'VOCdevkit', 'VOC2012')
    seg = PascalVOCDataset(
        data_root=voc,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt')
    assert len(seg) == NUM_VAL
    info = seg.get_data_info(0)
    label = LoadAnnotations()(dict(info))['gt_seg_map']
    assert np.array_equal(label, semantic_map(scenes['val', 0], ignore_border=True))

    det = DET_DATASETS.build(
        dict(
            type='VOCDataset',
            data_root=osp.join(root, 'VOCdevkit'),
            ann_file='VOC2012/ImageSets/Main/trainval.txt',
            data_prefix=dict(sub_data_root='VOC2012/'),
            test_mode=True))
    assert len(det) == NUM_TRAIN + NUM_VAL
    for idx, key in ((0, ('train', 0)), (NUM_TRAIN + 1, ('val', 1))):
        info = det.get_data_info(idx)
        scene = scenes[key]
        got = [(inst['bbox_label'], inst['bbox']) for inst in info['instances']]
        # mmdet keeps VOC's legacy coordinates: 0-based, x2 / y2 inclusive
        want = [(o.label, [o.bbox[0], o.bbox[1], o.bbox[2] - 1, o.bbox[3] - 1])
                for o in scene.objects]
        assert got == want


def test_cityscapes_tree(written):
    from mmseg.datasets import CityscapesDataset
    from mmseg.datasets.transforms import LoadAnnotations
    root, scenes = written
    ds = CityscapesDataset(
        data_root=osp.join(root, 'cityscapes'),
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'))
    assert len(ds) == NUM_TRAIN
    for i in range(NUM_TRAIN):
        info = ds.get_data_info(i)
        assert info['img_path'].endswith(f'demo_{i:06d}_000019_leftImg8bit.png')
        label = LoadAnnotations()(dict(info))['gt_seg_map']
        expected = semantic_map(scenes['train', i], ignore_border=True)
        assert np.array_equal(label, expected)
        assert set(np.unique(label)) <= set(range(len(DEMO_CLASSES) + 1)) | {255}


def test_nyud_segmentation_and_depth(written):
    from mmseg.datasets.transforms import LoadAnnotations, LoadDepthAnnotation
    from revisit_ssl.downstream import NYUDv2Dataset, NYUDv2DepthDataset
    root, scenes = written
    nyud = osp.join(root, 'NYUDv2')
    seg = NYUDv2Dataset(
        data_root=nyud,
        data_prefix=dict(img_path='images', seg_map_path='segmentation'),
        ann_file='gt_sets/train.txt')
    depth = NYUDv2DepthDataset(data_root=nyud, ann_file='gt_sets/val.txt')
    assert len(seg) == NUM_TRAIN and len(depth) == NUM_VAL
    for i in range(NUM_TRAIN):
        raw = cv2.imread(seg.get_data_info(i)['seg_map_path'], cv2.IMREAD_UNCHANGED)
        sem = semantic_map(scenes['train', i], ignore_border=True)
        # files: 0 unlabelled (outlines), 1 wall (background), c + 2 for demo class c
        assert np.array_equal(raw == 0, sem == 255)
        assert np.array_equal(raw[sem != 255], sem[sem != 255] + 1)
        # reduce_zero_label: back to 255 / 0..39
        label = LoadAnnotations()(dict(seg.get_data_info(i)))['gt_seg_map']
        assert np.array_equal(label, sem)
    for i in range(NUM_VAL):
        scene = scenes['val', i]
        out = LoadDepthAnnotation(depth_rescale_factor=1e-3)(
            dict(depth.get_data_info(i)))
        metres = out['gt_depth_map']
        assert np.abs(metres - demo_depth(scene)).max() <= 5e-4
        # objects stand on the floor: constant depth = the floor's at their lowest row
        h = scene.image.shape[0]
        floor = np.linspace(6.0, 2.0, h)
        for obj in scene.objects:
            inner = obj.mask & (metres > 0)
            if inner.any():
                assert np.allclose(metres[inner], floor[obj.bbox[3] - 1], atol=5e-4)
        assert (metres == 0).any() and metres.max() <= 6.0 + 1e-3
