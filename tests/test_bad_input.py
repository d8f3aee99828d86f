"""Bad-input matrix: each case is a clear error that names the fix, or works as documented."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def demo_pipeline():
    from mmcv.transforms import Compose
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_demo.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose(cfg.train_dataloader.dataset.pipeline)


def tiny_model(**head):
    from mmpretrain.registry import MODELS
    return MODELS.build(
        dict(
            type='KNNMoCo',
            num_small_crops=head.pop('num_small_crops', None),
            backbone=dict(
                type='ResNet', depth=18, base_channels=8, stem_channels=8),
            neck=dict(
                type='MoCoV2Neck',
                in_channels=64,
                hid_channels=16,
                out_channels=8,
                with_avg_pool=True),
            head=dict(
                type='DualQueueHead',
                feat_dim=8,
                backbone_dim=64,
                knn_k=2,
                **head)))


def views(n_small=0, batch=4):
    return [torch.randn(batch, 3, 32, 32) for _ in range(2)] + [
        torch.randn(batch, 3, 16, 16) for _ in range(n_small)
    ]


# --- each case: (callable(tmp_path), exception type, text the message must contain)


def missing_data_root(tmp_path):
    from revisit_ssl.utils.data_check import check_data_roots
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_coco.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'coco')
    check_data_roots(cfg)


def empty_image_folder(tmp_path):
    # tools/train.py's check, before any dataloader: the folder exists, holds no image
    from revisit_ssl.utils.data_check import check_data_roots
    (tmp_path / 'train2017').mkdir()
    (tmp_path / 'train2017' / 'README.txt').write_text('no images here')
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_coco.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    check_data_roots(cfg)


def corrupt_image(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg at all')
    demo_pipeline()(dict(img_path=str(bad)))


def queue_not_multiple_of_batch(tmp_path):
    tiny_model(queue_len=10).loss(views(batch=4), None)


def num_small_mismatch(tmp_path):
    tiny_model(queue_len=16, num_small_crops=4).loss(views(n_small=2), None)


def crop_scale_out_of_range(tmp_path):
    from revisit_ssl.datasets.transforms import ConstrainedMultiCrop
    ConstrainedMultiCrop(small_scale=(0.05, 1.4))


def crop_ratio_out_of_range(tmp_path):
    from revisit_ssl.datasets.transforms import ConstrainedMultiCrop
    ConstrainedMultiCrop(aspect_ratio_range=(4 / 3, 3 / 4))


def overlap_zero(tmp_path):
    from revisit_ssl.datasets.transforms import ConstrainedMultiCrop
    ConstrainedMultiCrop(min_overlap=0.)


def overlap_above_one(tmp_path):
    from revisit_ssl.datasets.transforms import ConstrainedMultiCrop
    ConstrainedMultiCrop(min_overlap=1.5)


def random_choice_not_summing_to_one(tmp_path):
    from revisit_ssl.datasets.transforms import RandomChoiceAutoAugment
    RandomChoiceAutoAugment(prob=(0.3, 0.3))


def pareto_alpha_not_positive(tmp_path):
    from revisit_ssl.datasets.wrappers.pareto_long_tail import \
        pareto_class_counts
    pareto_class_counts(10, alpha=0.)


def pareto_class_smaller_than_quota(tmp_path):
    from mmengine.dataset import BaseDataset

    from revisit_ssl.datasets.wrappers import ParetoLongTailDataset

    class Labelled(BaseDataset):
        METAINFO = dict(classes=[str(c) for c in range(4)])

        def load_data_list(self):
            # class 0 has 2 images, the others 20
            return [
                dict(img_path=f'{c}_{i}.jpg', gt_label=c) for c in range(4)
                for i in range(2 if c == 0 else 20)
            ]

        def get_cat_ids(self, idx):
            return [self.get_data_info(idx)['gt_label']]

    ParetoLongTailDataset(
        Labelled(), alpha=6., max_count=20, min_count=5, seed=0)


def converter_on_non_moco_checkpoint(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'extract_backbone',
        osp.join(ROOT, 'tools/model_converters/extract_backbone.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    src = tmp_path / 'classifier.pth'
    torch.save({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, src)
    if module.main([str(src), str(tmp_path / 'out.pth')]) != 0:
        raise module.ConversionError('converter refused: not a MoCo checkpoint')


def resume_with_other_queue_len(tmp_path):
    from mmengine.runner import load_checkpoint
    path = tmp_path / 'k16.pth'
    torch.save({'state_dict': tiny_model(queue_len=16).state_dict()}, path)
    # mmengine's resume path loads with strict=False, which only warns on shape mismatch
    load_checkpoint(tiny_model(queue_len=32), str(path), strict=False)


CASES = [
    (missing_data_root, FileNotFoundError, '--cfg-options'),
    (empty_image_folder, FileNotFoundError,
     'train2017\' or its sub-folders (type=CustomDataset, with_label=False, '
     'extensions looked for: .bmp .jpeg .jpg .pgm .png .ppm .tif'),
    (corrupt_image, OSError, 'broken.jpg'),
    (queue_not_multiple_of_batch, ValueError, 'model.head.queue_len'),
    (num_small_mismatch, ValueError, 'num_small_crops=4'),
    (crop_scale_out_of_range, ValueError, 'scale'),
    (crop_ratio_out_of_range, ValueError, 'aspect_ratio_range'),
    (overlap_zero, ValueError, 'constrained=False'),
    (overlap_above_one, ValueError, 'min_overlap'),
    (random_choice_not_summing_to_one, ValueError, 'sum'),
    (pareto_alpha_not_positive, ValueError, 'alpha'),
    (pareto_class_smaller_than_quota, ValueError, 'allow_smaller'),
    (converter_on_non_moco_checkpoint, ValueError, ''),
    (resume_with_other_queue_len, ValueError, 'queue_len=16'),
]


@pytest.mark.parametrize(
    'case, error, text', CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_input_is_a_clear_error(case, error, text, tmp_path):
    with pytest.raises(error) as info:
        case(tmp_path)
    assert text in str(info.value), str(info.value)


@pytest.mark.parametrize('shape', [(1, 1), (1, 1, 3), (50, 37), (7, 300, 3)])
def test_grey_tiny_and_extreme_images_work(shape, tmp_path):
    """Grey (2-D), 1x1 and extreme aspect ratios go through the demo pipeline."""
    path = str(tmp_path / 'odd.png')
    cv2.imwrite(path, np.random.default_rng(0).integers(
        0, 255, shape, dtype=np.uint8))
    out = demo_pipeline()(dict(img_path=path))
    assert len(out['inputs']) == 6
    assert [tuple(v.shape) for v in out['inputs']] == [(3, 32, 32)] * 2 + [
        (3, 20, 20)
    ] * 4
