"""Every downstream config: one training iteration + one validation pass on demo data, through
the same ``Runner.from_cfg`` that tools/train.py uses, starting from a demo kNN-MoCo checkpoint
exactly as tools/train.py writes it, no conversion step (ResNet-18, CPU, BN instead of
SyncBN, 64-px crops)."""
import copy
import os.path as osp
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from revisit_ssl.utils.data_check import check_data_roots
from test_converter import make_knn_moco_checkpoint

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'downstream', 'mmseg')
DET = osp.join(ROOT, 'configs', 'downstream', 'mmdet')

VOC_SEG = 'fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py'
CITYSCAPES = 'fcn_r50-d16_knn-moco-pre_4xb4-150e_cityscapes-768x768.py'
NYUD_SEG = 'deeplabv3_r50-d16_knn-moco-pre_4xb2-100e_nyud40-480x640.py'
NYUD_DEPTH = 'deeplabv3_r50-d16_knn-moco-pre_4xb2-100e_nyud-depth-480x640.py'
DC5 = 'faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py'
C4 = 'faster-rcnn_r50-c4_knn-moco-pre_8xb2-24k_voc0712.py'

CROP = (64, 64)


@pytest.fixture(scope='module')
def demo_downstream(tmp_path_factory) -> str:
    """VOC, Cityscapes and NYUD demo trees: 2 train images (one batch), 2 val images."""
    from revisit_ssl.utils.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('downstream'))
    make_demo_data(
        root,
        formats=('voc', 'cityscapes', 'nyud'),
        num_train=2,
        num_val=2,
        seed=0,
        min_size=64,
        max_size=96)
    return root


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory) -> Dict[str, object]:
    """A demo kNN-MoCo checkpoint (ResNet-18, epoch 3) as tools/train.py writes it; the
    configs read its online backbone through ``prefix='backbone.'``. ``state`` holds those
    tensors under the backbone's own keys."""
    folder = tmp_path_factory.mktemp('ckpt')
    path = make_knn_moco_checkpoint(str(folder / 'epoch_3.pth'))
    raw = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    assert any(k.startswith('momentum_encoder.') for k in raw)  # the whole model
    state = {k[len('backbone.'):]: v for k, v in raw.items() if k.startswith('backbone.')}
    return dict(path=path, state=state)


def _walk(node, fn):
    """Apply ``fn`` to every dict of a config tree (pipelines included)."""
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


def _tiny_pipelines(node: dict) -> None:
    kind = node.get('type')
    if kind == 'RandomCrop':
        node['crop_size'] = CROP
    elif kind in ('RandomResize', 'Resize') and 'scale' in node:
        node['scale'] = (128, 64)
    elif kind == 'RandomChoiceResize':
        node['scales'] = [(128, 64), (128, 96)]
    elif kind == 'SegDataPreProcessor' and node.get('size'):
        node['size'] = CROP


def _bn_not_syncbn(node: dict) -> None:
    if node.get('type') == 'SyncBN':
        node['type'] = 'BN'


def cpu_config(config: str, data_root: str, checkpoint: str, work_dir: str,
               options: dict) -> Config:
    """Load a downstream config and apply what a CPU smoke run changes.

    ``options`` are ``--cfg-options``-style overrides (depth 18 channels, data roots).
    """
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_dataloader.batch_size = 2
    if cfg.train_cfg.type == 'EpochBasedTrainLoop':
        cfg.train_cfg.max_epochs = 1
    else:
        cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    # visualizer instances are process-wide singletons by name
    cfg.visualizer.name = f'vis_{osp.basename(config)}'
    cfg_dict = cfg._cfg_dict.to_dict()
    _walk(cfg_dict, _bn_not_syncbn)
    _walk(cfg_dict, _tiny_pipelines)
    # every Pretrained init (backbone, C4 shared head) -> the demo pretraining checkpoint
    _walk(
        cfg_dict, lambda n: n.update(checkpoint=checkpoint)
        if n.get('type') == 'Pretrained' else None)
    cfg = Config(cfg_dict, filename=config)
    assert 'SyncBN' not in cfg.pretty_text
    assert data_root in cfg.pretty_text
    return cfg


class _Probe(Hook):
    """Record the weights right after initialisation and the validation metrics."""
    priority = 'VERY_LOW'

    def __init__(self, modules):
        self.modules = modules
        self.initial = {}
        self.metrics = None

    def before_train(self, runner):
        model = runner.model
        for name in self.modules:
            module = model
            for attr in name.split('.'):
                module = getattr(module, attr)
            self.initial[name] = copy.deepcopy(module.state_dict())

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})


def run_one_iteration(cfg: Config, modules=('backbone', )):
    check_data_roots(cfg)  # tools/train.py's check: the demo trees have every path
    runner = Runner.from_cfg(cfg)
    probe = _Probe(modules)
    runner.register_hook(probe)
    runner.train()
    return runner, probe


def assert_started_from_pretrained(probe, pretrained, module='backbone'):
    initial = probe.initial[module]
    assert len(initial) > 0
    for key, value in initial.items():
        assert key in pretrained['state'], key
        assert torch.equal(value, pretrained['state'][key]), key


def assert_backbone_trained(runner, probe):
    """One optimiser step happened and reached the whole backbone."""
    assert runner.iter == 1
    current = runner.model.state_dict()
    initial = probe.initial['backbone']
    changed = [
        k for k, v in initial.items()
        if v.is_floating_point() and not torch.equal(v, current[f'backbone.{k}'])
    ]
    # the stem too: the configs fine-tune every layer (no frozen stages)
    assert 'conv1.weight' in changed
    assert len(changed) > len(initial) // 2


# ------------------------------------------------------------------------- MMSeg


@pytest.mark.parametrize('config, tree, classes', [
    (VOC_SEG, 'VOCdevkit/VOC2012', 21),
    (CITYSCAPES, 'cityscapes', 19),
    (NYUD_SEG, 'NYUDv2', 40),
])
def test_segmentation_one_iteration(config, tree, classes, demo_downstream,
                                    pretrained, tmp_path):
    data_root = osp.join(demo_downstream, tree)
    options = {'model.decode_head.in_channels': 512}
    cfg = Config.fromfile(osp.join(SEG, config))
    if cfg.train_dataloader.dataset.type == 'ConcatDataset':
        for i in range(len(cfg.train_dataloader.dataset.datasets)):
            options[f'train_dataloader.dataset.datasets.{i}.data_root'] = data_root
    else:
        options['train_dataloader.dataset.data_root'] = data_root
    options['val_dataloader.dataset.data_root'] = data_root
    options['test_dataloader.dataset.data_root'] = data_root
    options['model.backbone.depth'] = 18
    cfg = cpu_config(
        osp.join(SEG, config), data_root, pretrained['path'], str(tmp_path),
        options)

    runner, probe = run_one_iteration(cfg)
    assert runner.model.decode_head.num_classes == classes
    assert_started_from_pretrained(probe, pretrained)
    assert_backbone_trained(runner, probe)
    assert 'mIoU' in probe.metrics and 0 <= probe.metrics['mIoU'] <= 100


def test_nyud_depth_one_iteration(demo_downstream, pretrained, tmp_path):
    data_root = osp.join(demo_downstream, 'NYUDv2')
    options = {
        'model.decode_head.in_channels': 512,
        'model.backbone.depth': 18,
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        # the Eigen crop is defined on 640 x 480 frames, the demo images are ~80 px
        'val_evaluator.crop_type': None,
        'test_evaluator.crop_type': None,
    }
    cfg = cpu_config(
        osp.join(SEG, NYUD_DEPTH), data_root, pretrained['path'],
        str(tmp_path), options)
    runner, probe = run_one_iteration(cfg)
    assert type(runner.model).__name__ == 'DepthEstimator'
    assert_started_from_pretrained(probe, pretrained)
    assert_backbone_trained(runner, probe)
    rmse = probe.metrics['rmse']
    assert 0 < rmse < 10 and torch.isfinite(torch.tensor(rmse))
    assert 0 <= probe.metrics['d1'] <= 1


# ------------------------------------------------------------------------- MMDet


def _det_data_options(cfg: Config, data_root: str) -> dict:
    """Point VOC07 + VOC12 at the demo's VOC2012 tree (it has a Main/test.txt)."""
    options = {}
    for i, ds in enumerate(cfg.train_dataloader.dataset.datasets):
        key = f'train_dataloader.dataset.datasets.{i}'
        options[f'{key}.data_root'] = data_root
        options[f'{key}.data_prefix.sub_data_root'] = 'VOC2012/'
        options[f'{key}.ann_file'] = ds.ann_file.replace('VOC2007', 'VOC2012')
    for loader in ('val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = data_root
        options[f'{loader}.dataset.data_prefix.sub_data_root'] = 'VOC2012/'
        options[f'{loader}.dataset.ann_file'] = 'VOC2012/ImageSets/Main/test.txt'
    return options


@pytest.mark.parametrize('config', [DC5, C4])
def test_detection_one_iteration(config, demo_downstream, pretrained, tmp_path):
    data_root = osp.join(demo_downstream, 'VOCdevkit') + '/'
    cfg = Config.fromfile(osp.join(DET, config))
    options = _det_data_options(cfg, data_root)
    options['model.backbone.depth'] = 18
    # fewer RoIs: the res5 RoI head of C4 on 512 RoIs / image dominates CPU time
    options['model.train_cfg.rpn_proposal.max_per_img'] = 200
    options['model.train_cfg.rcnn.sampler.num'] = 64
    options['model.test_cfg.rpn.max_per_img'] = 50
    if config == DC5:
        options.update({
            'model.rpn_head.in_channels': 512,
            'model.rpn_head.feat_channels': 512,
            'model.roi_head.bbox_roi_extractor.out_channels': 512,
            'model.roi_head.bbox_head.in_channels': 512,
        })
        modules = ('backbone', )
    else:
        options.update({
            'model.rpn_head.in_channels': 256,
            'model.rpn_head.feat_channels': 256,
            'model.roi_head.bbox_roi_extractor.out_channels': 256,
            'model.roi_head.shared_head.depth': 18,
            'model.roi_head.bbox_head.in_channels': 512,
        })
        modules = ('backbone', 'roi_head.shared_head')
    cfg = cpu_config(
        osp.join(DET, config), data_root, pretrained['path'], str(tmp_path),
        options)
    runner, probe = run_one_iteration(cfg, modules)
    for module in modules:
        assert_started_from_pretrained(probe, pretrained, module)
    assert_backbone_trained(runner, probe)
    if config == C4:
        # the res5 RoI head holds the checkpoint's layer4, not random / Caffe weights
        assert any(k.startswith('layer4.') for k in probe.initial[modules[1]])
        assert not any(k.startswith('layer4.') for k in probe.initial['backbone'])
    for key in ('pascal_voc/mAP', 'pascal_voc/AP50', 'pascal_voc/AP75'):
        assert key in probe.metrics and 0 <= probe.metrics[key] <= 1, key
