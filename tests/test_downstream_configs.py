"""The downstream configs encode the paper's fine-tuning recipes (arXiv 2106.05967, appendix;
issue 7): a table of expected values checked against the fully resolved configs."""
import copy
import functools
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from revisit_ssl.utils.data_check import DatasetNotFoundError, check_data_roots

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'downstream', 'mmseg')
DET = osp.join(ROOT, 'configs', 'downstream', 'mmdet')

RGB_MEAN = [123.675, 116.28, 103.53]
RGB_STD = [58.395, 57.12, 57.375]

# name -> expected resolved values; None means "must be absent"
SEG_RECIPES = {
    'fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py':
    dict(
        head='FCNHead',
        head_dilation=6,
        num_classes=21,
        optimizer=dict(type='SGD', lr=0.003, momentum=0.9, weight_decay=1e-4),
        scheduler=dict(type='MultiStepLR', milestones=[30, 40], gamma=0.1),
        epochs=45,
        batch=16,
        crop=(512, 512),
        scale_range=(0.5, 2.0),
        dataset='PascalVOCDataset',
        train_lists=[
            'ImageSets/Segmentation/train.txt', 'ImageSets/Segmentation/aug.txt'
        ],
        val_list='ImageSets/Segmentation/val.txt'),
    'fcn_r50-d16_knn-moco-pre_4xb4-150e_cityscapes-768x768.py':
    dict(
        head='FCNHead',
        head_dilation=1,
        num_classes=19,
        optimizer=dict(type='Adam', lr=1e-4, weight_decay=1e-4),
        scheduler=dict(type='PolyLR', power=0.9, eta_min=0.0),
        epochs=150,
        batch=16,
        crop=(768, 768),
        scale_range=(0.5, 2.0),
        dataset='CityscapesDataset'),
    'deeplabv3_r50-d16_knn-moco-pre_4xb2-100e_nyud40-480x640.py':
    dict(
        head='ASPPHead',
        aspp_dilations=(1, 6, 12, 18),
        num_classes=40,
        optimizer=dict(type='Adam', lr=1e-4, weight_decay=1e-4),
        scheduler=dict(type='PolyLR', power=0.9, eta_min=0.0),
        epochs=100,
        batch=8,
        crop=(480, 640),
        scale_range=(0.5, 2.0),
        dataset='NYUDv2Dataset',
        train_lists=['gt_sets/train.txt'],
        val_list='gt_sets/val.txt'),
    'deeplabv3_r50-d16_knn-moco-pre_4xb2-100e_nyud-depth-480x640.py':
    dict(
        head='ASPPDepthHead',
        aspp_dilations=(1, 6, 12, 18),
        num_classes=1,
        optimizer=dict(type='Adam', lr=1e-4, weight_decay=1e-4),
        scheduler=dict(type='PolyLR', power=0.9, eta_min=0.0),
        epochs=100,
        batch=8,
        crop=(480, 640),
        scale_range=None,  # depth values do not scale with the image
        dataset='NYUDv2DepthDataset',
        train_lists=['gt_sets/train.txt'],
        val_list='gt_sets/val.txt'),
}

DET_RECIPES = {
    'faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py':
    dict(
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        num_stages=4,
        shared_head=False),
    'faster-rcnn_r50-c4_knn-moco-pre_8xb2-24k_voc0712.py':
    dict(
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        num_stages=3,
        shared_head=True),
}

ALL = [osp.join(SEG, n) for n in SEG_RECIPES] + [
    osp.join(DET, n) for n in DET_RECIPES
]


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Config:
    return Config.fromfile(path)


def load(path: str) -> Config:
    """Resolve a config once per session; hand out copies so tests can edit them."""
    return copy.deepcopy(_load(path))


def _gpus_times_batch(name: str):
    gpus, batch = re.search(r'_(\d+)xb(\d+)-', name).groups()
    return int(gpus), int(batch)


def _transform(pipeline, kind):
    found = [t for t in pipeline if t['type'] == kind]
    return found[0] if found else None


def _train_datasets(cfg):
    ds = cfg.train_dataloader.dataset
    return list(ds.datasets) if ds.type == 'ConcatDataset' else [ds]


def test_every_config_is_in_the_table():
    on_disk = {
        osp.basename(p)
        for p in glob.glob(osp.join(SEG, '*.py')) +
        glob.glob(osp.join(DET, '*.py'))
    }
    assert on_disk == set(SEG_RECIPES) | set(DET_RECIPES)


@pytest.mark.parametrize('path', ALL, ids=osp.basename)
def test_common_settings(path):
    cfg = load(path)
    text = cfg.pretty_text
    # never a URL (open-mmlab://, http) in anything a run loads
    assert '://' not in text
    assert cfg.default_scope in ('mmseg', 'mmdet')
    assert cfg.custom_imports.imports == ['revisit_ssl.downstream']
    assert {'type': 'PretrainedInitCheckHook'} in cfg.custom_hooks
    assert cfg.get('data_layout'), 'tools/train.py prints it for missing data'
    # our backbone: plain-stem ResNet-50, pytorch style, SyncBN, every layer trained
    bb = cfg.model.backbone
    assert bb.type == 'ResNet' and bb.depth == 50 and bb.style == 'pytorch'
    assert bb.norm_cfg.type == 'SyncBN' and bb.norm_eval is False
    assert bb.get('frozen_stages', -1) == -1
    # the pretraining checkpoint as tools/train.py writes it, its backbone.* keys
    assert bb.init_cfg == dict(
        type='Pretrained',
        checkpoint='work_dirs/knn_moco_coco/epoch_200.pth',
        prefix='backbone.')
    assert cfg.model.get('pretrained') is None
    # normalisation in the data preprocessor, with the pretraining's RGB statistics
    pre = cfg.model.data_preprocessor
    assert pre.mean == RGB_MEAN and pre.std == RGB_STD and pre.bgr_to_rgb
    for loader in ('train_dataloader', 'val_dataloader'):
        assert 'Normalize' not in str(cfg[loader])
    # batch: GPUs x per-GPU batch of the file name = the recipe's total batch
    gpus, per_gpu = _gpus_times_batch(osp.basename(path))
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.auto_scale_lr.base_batch_size == gpus * per_gpu


@pytest.mark.parametrize('name', list(SEG_RECIPES))
def test_segmentation_recipe(name):
    want = SEG_RECIPES[name]
    cfg = load(osp.join(SEG, name))
    model = cfg.model
    # output stride 16: last stage dilation 2 / stride 1, every block dilated
    assert tuple(model.backbone.strides) == (1, 2, 2, 1)
    assert tuple(model.backbone.dilations) == (1, 1, 1, 2)
    assert model.backbone.contract_dilation is False
    assert model.get('auxiliary_head') is None
    head = model.decode_head
    assert head.type == want['head']
    assert head.in_channels == 2048 and head.channels == 256
    assert head.norm_cfg.type == 'SyncBN'
    if head.type == 'FCNHead':
        assert head.num_convs == 2 and head.kernel_size == 3
        assert head.dilation == want['head_dilation']
        assert head.concat_input is False and head.dropout_ratio == 0
        assert head.num_classes == want['num_classes']
    else:
        assert tuple(head.dilations) == want['aspp_dilations']
        assert head.get('num_classes', 1) == want['num_classes']
    if head.type == 'ASPPDepthHead':
        assert model.type == 'DepthEstimator'
        assert head.loss_decode.type == 'DepthMSELoss'
        assert cfg.val_evaluator.type == 'DepthMetric'
        assert cfg.val_evaluator.get('depth_metrics') is None  # all, rmse included

    # optimiser and schedule, in epochs
    assert cfg.optim_wrapper.optimizer == want['optimizer']
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_cfg.max_epochs == want['epochs']
    assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
    (sched, ) = cfg.param_scheduler
    for key, value in want['scheduler'].items():
        assert sched[key] == value, key
    assert sched.by_epoch and sched.begin == 0 and sched.end == want['epochs']
    gpus, per_gpu = _gpus_times_batch(name)
    assert gpus * per_gpu == want['batch']

    # augmentation
    for ds in _train_datasets(cfg):
        assert ds.type == want['dataset']
        pipeline = ds.pipeline
        assert _transform(pipeline, 'RandomFlip').prob == 0.5
        assert tuple(_transform(pipeline, 'RandomCrop').crop_size) == want[
            'crop']
        resize = _transform(pipeline, 'RandomResize')
        if want['scale_range'] is None:
            assert resize is None
        else:
            assert tuple(resize.ratio_range) == want['scale_range']
        assert _transform(pipeline, 'PhotoMetricDistortion') is None
    assert tuple(model.data_preprocessor.size) == want['crop']
    if 'train_lists' in want:
        assert [ds.ann_file for ds in _train_datasets(cfg)
                ] == want['train_lists']
        assert cfg.val_dataloader.dataset.ann_file == want['val_list']


@pytest.mark.parametrize('name', list(DET_RECIPES))
def test_detection_recipe(name):
    want = DET_RECIPES[name]
    cfg = load(osp.join(DET, name))
    model = cfg.model
    bb = model.backbone
    assert tuple(bb.strides) == want['strides']
    assert tuple(bb.dilations) == want['dilations']
    assert bb.num_stages == want['num_stages']
    assert model.roi_head.bbox_head.num_classes == 20
    shared = model.roi_head.get('shared_head')
    if want['shared_head']:
        # the C4 res5 head: our weights, not the base's open-mmlab:// Caffe ones
        assert shared.init_cfg == bb.init_cfg
        assert shared.style == 'pytorch' and shared.norm_eval is False
        assert shared.norm_cfg.type == 'SyncBN'
    else:
        assert shared is None

    # 24k iterations at batch 16, lr 0.02, x0.1 at 18k and 22k, 100 warm-up iterations
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == 24000
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.02,
                                                                  0.9, 1e-4)
    assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 0.0
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR',
                                                              0.001, 100)
    assert steps.type == 'MultiStepLR' and steps.milestones == [18000, 22000]
    assert steps.gamma == 0.1 and steps.end == 24000 and not steps.by_epoch
    gpus, per_gpu = _gpus_times_batch(name)
    assert gpus * per_gpu == 16

    # VOC07 trainval + VOC12 trainval -> VOC07 test; scales [480, 800] / 800
    datasets = cfg.train_dataloader.dataset.datasets
    assert [d.ann_file for d in datasets] == [
        'VOC2007/ImageSets/Main/trainval.txt',
        'VOC2012/ImageSets/Main/trainval.txt'
    ]
    for ds in datasets:
        resize = _transform(ds.pipeline, 'RandomChoiceResize')
        shorts = [min(s) for s in resize.scales]
        assert shorts == list(range(480, 801, 32))
        assert _transform(ds.pipeline, 'RandomFlip').prob == 0.5
    assert cfg.val_dataloader.dataset.ann_file == 'VOC2007/ImageSets/Main/test.txt'
    test_resize = _transform(cfg.val_dataloader.dataset.pipeline, 'Resize')
    assert min(test_resize.scale) == 800
    ev = cfg.val_evaluator
    assert ev.type == 'VOCMetric' and ev.eval_mode == '11points'
    assert ev.iou_thrs == [round(0.5 + 0.05 * i, 2) for i in range(10)]


def test_missing_data_names_layout(tmp_path):
    """What tools/train.py prints for a missing dataset: path, layout and the fix."""
    cfg = load(osp.join(SEG, list(SEG_RECIPES)[2]))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(DatasetNotFoundError) as err:
        check_data_roots(cfg)
    msg = str(err.value)
    assert 'nowhere' in msg and 'gt_sets/train.txt' in msg
    assert 'train_dataloader.dataset.data_root=' in msg
