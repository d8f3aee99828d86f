"""Every config loads, builds on CPU without network, and its pipeline runs on a demo image.

Parametrised over the files found under configs/, so a new config is tested without editing
this file. The main recipe and the ablation ladder are checked against the paper's numbers.
"""
import glob
import json
import os
import os.path as osp
import re
import socket

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)
PRETRAIN_CONFIGS = [c for c in CONFIGS if '/downstream/' not in c]
#: parameter count of each distinct (scope, model config) built so far
_BUILT_MODELS = {}


def load(rel):
    return Config.fromfile(osp.join(ROOT, rel))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f'network access attempted: {args}')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


def strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from strings(v)


def test_configs_found():
    assert 'configs/knn_moco_coco.py' in CONFIGS
    assert len(PRETRAIN_CONFIGS) >= 14


@pytest.mark.parametrize('rel', CONFIGS)
def test_config_builds_on_cpu_without_network(rel, no_network):
    cfg = load(rel)
    for s in strings(cfg.to_dict()):
        assert not s.startswith(('open-mmlab://', 'http://', 'https://',
                                 'torchvision://')), (rel, s)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'mmpretrain')
    from mmengine.registry import MODELS
    model_cfg = cfg.model
    is_downstream = '/downstream/' in rel
    if is_downstream:
        # downstream models start from the converter's output, a path users set (checked
        # above not to be a URL); drop those Pretrained inits to build without it
        _drop_pretrained(model_cfg)
    # Many configs share one model (the Section 3 datasets, the IoU sweep, schedules): each
    # distinct model config is built once per session; a config whose model was already
    # built has passed that check (a ResNet-50 kNN-MoCo takes ~5 s to build on the CI cores).
    key = (scope, json.dumps(model_cfg.to_dict(), sort_keys=True, default=repr))
    if key not in _BUILT_MODELS:
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(model_cfg)
            model.init_weights()
        _BUILT_MODELS[key] = sum(p.numel() for p in model.parameters())
        del model
    assert _BUILT_MODELS[key] > 0
    if not is_downstream:
        assert cfg.custom_imports.imports == ['revisit_ssl']
        assert cfg.train_dataloader.collate_fn.type == 'default_collate'
        assert cfg.train_dataloader.drop_last is True


def _drop_pretrained(cfg):
    if isinstance(cfg, dict):
        cfg.pop('pretrained', None)
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for v in cfg.values():
            _drop_pretrained(v)
    elif isinstance(cfg, list):
        for v in cfg:
            _drop_pretrained(v)


def _pipeline_of(dataset_cfg):
    while 'pipeline' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg['pipeline']


@pytest.mark.parametrize('rel', PRETRAIN_CONFIGS)
def test_pretrain_pipeline_runs_on_a_demo_image(rel, demo_root):
    from mmcv.transforms import Compose
    cfg = load(rel)
    image = sorted(glob.glob(osp.join(demo_root, 'train', '*', '*.jpg')))[0]
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(_pipeline_of(cfg.train_dataloader.dataset))
        out = pipeline(dict(img_path=image))
    views = out['inputs']
    num_small = cfg.model.num_small_crops
    assert len(views) == 2 + num_small
    crop = [t for t in _pipeline_of(cfg.train_dataloader.dataset)
            if t['type'] == 'ConstrainedMultiCrop'][0]
    large = crop.get('large_size', 160)
    small = crop.get('small_size', 96)
    for i, view in enumerate(views):
        size = large if i < 2 else small
        assert tuple(view.shape) == (3, size, size), (rel, i)


def layout_tree(layout):
    """``(images, annotation files)`` a ``data_layout`` text describes, two images per folder.

    Reads the two forms the configs use: an indented tree (``root/`` first, one entry per line,
    ``# comments``, ``...`` for more of the same, ``*`` for any name) and the one-line
    ``root/{a,b}/<class>/*.jpg: note``. Example file names are created as written, plus one
    more of the same kind; ``<class>`` stands for two class folders. An annotation ``.txt``
    whose comment quotes its line format (``"<class_dir>/<image>.JPEG <label>"``) is written
    listing the images of the folder named like it (``meta/train.txt`` -> ``train/``).
    """
    lines = layout.splitlines()
    if len(lines) == 1:
        pattern = lines[0].split(':')[0].strip()
        head, options, tail = re.match(r'(.*)\{(.*?)\}(.*)', pattern).groups()
        patterns = [head + option + tail for option in options.split(',')]
        patterns = [p.replace('<class>', c) for p in patterns for c in ('circle', 'square')]
        return [p.replace('*', f'img{i}') for p in patterns for i in range(2)], {}
    stack = [(-1, lines[0].strip().rstrip('/'))]
    images, annotations = [], {}
    for line in lines[1:]:
        text, _, comment = line.partition('#')
        name = text.strip()
        if not name or name == '...':
            continue
        indent = len(text) - len(text.lstrip())
        while stack[-1][0] >= indent:
            stack.pop()
        path = osp.join(stack[-1][1], name.rstrip('/'))
        if name.endswith('/'):
            stack.append((indent, path))
        elif path.endswith('.txt'):
            annotations[path] = re.search(r'"(.*)"', comment).group(1)
        elif '*' in name:
            images += [path.replace('*', f'img{i}') for i in range(2)]
        else:
            images += [path, osp.join(osp.dirname(path), 'more_' + osp.basename(path))]
    return images, annotations


def write_layout(layout):
    """Create the tree of :func:`layout_tree` under the current folder; returns the images."""
    import cv2
    import numpy as np
    images, annotations = layout_tree(layout)
    for path in images:
        os.makedirs(osp.dirname(path), exist_ok=True)
        assert cv2.imwrite(path if not path.endswith('.JPEG') else path[:-5] + '.jpg',
                           np.full((8, 8, 3), 128, np.uint8)), path
        if path.endswith('.JPEG'):  # OpenCV picks the encoder by a lower-case extension
            os.rename(path[:-5] + '.jpg', path)
    for ann, fmt in annotations.items():
        folder = osp.join(osp.dirname(osp.dirname(ann)), osp.splitext(osp.basename(ann))[0])
        members = sorted(osp.relpath(p, folder) for p in images
                         if p.startswith(folder + osp.sep))
        classes = sorted({m.split(osp.sep)[0] for m in members})
        lines = [
            fmt.replace('<class_dir>/<image>.JPEG', m).replace(
                '<label>', str(classes.index(m.split(osp.sep)[0]))) for m in members
        ]
        os.makedirs(osp.dirname(ann), exist_ok=True)
        with open(ann, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return images


def innermost_dataset(dataset):
    while 'dataset' in dataset:  # UniformSubsetDataset, ParetoLongTailDataset, ...
        dataset = dataset['dataset']
    return dataset


def test_layout_tree_reads_both_forms():
    fmt = '<class_dir>/<image>.JPEG <label>'
    tree = layout_tree('data/x/\n  a/      # note\n    1.jpg\n    ...\n'
                       f'  m/t.txt  # "{fmt}"\n  t/\n    n1/*.JPEG\n')
    assert tree == (['data/x/a/1.jpg', 'data/x/a/more_1.jpg', 'data/x/t/n1/img0.JPEG',
                     'data/x/t/n1/img1.JPEG'], {'data/x/m/t.txt': fmt})
    images, _ = layout_tree('d/{train,val}/<class>/*.jpg: run it')
    assert len(images) == 8 and 'd/val/square/img1.jpg' in images


@pytest.mark.parametrize('rel', PRETRAIN_CONFIGS)
def test_pretrain_data_root_has_a_documented_layout(rel, tmp_path, monkeypatch):
    """Data written as ``data_layout`` describes it is exactly what the training set reads.

    The layout is followed literally in an empty folder; the config's training dataset (inside
    its subset / long-tail wrappers, which other tests cover) must list exactly the images of
    the layout's training folders (those named ``train*``), and the data-root check of
    ``tools/train.py`` must pass.
    """
    from mmpretrain.registry import DATASETS
    from mmengine.registry import init_default_scope
    from revisit_ssl.utils.data_check import check_data_roots
    cfg = load(rel)
    assert cfg.get('data_layout'), f'{rel} must define data_layout'
    monkeypatch.chdir(tmp_path)
    images = write_layout(cfg.data_layout)
    # the folders below the data root (data/<name>/) that hold training images
    train_images = {osp.abspath(p) for p in images
                    if any(part.startswith('train') for part in p.split(osp.sep)[2:-1])}
    assert train_images, images
    check_data_roots(cfg)
    inner = innermost_dataset(cfg.train_dataloader.dataset.to_dict())
    inner['pipeline'] = []
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(inner)
    found = {osp.abspath(dataset.get_data_info(i)['img_path']) for i in range(len(dataset))}
    assert found == train_images, (rel, sorted(found ^ train_images))


# ----------------------------------------------------------------------------- paper values

MAIN_RECIPE = {
    'model.type': 'KNNMoCo',
    'model.backbone.depth': 50,
    'model.neck.in_channels': 2048,
    'model.neck.hid_channels': 2048,
    'model.neck.out_channels': 128,
    'model.neck.with_avg_pool': True,
    'model.head.type': 'DualQueueHead',
    'model.head.temperature': 0.2,
    'model.head.queue_len': 65536,
    'model.head.feat_dim': 128,
    'model.head.backbone_dim': 2048,
    'model.head.use_knn': True,
    'model.head.knn_k': 20,
    'model.head.knn_weight': 0.4,
    'model.knn_warmup_epochs': 5,
    'model.momentum': 0.005,  # paper m = 0.995
    'model.num_small_crops': 4,
    'optim_wrapper.optimizer.type': 'SGD',
    'optim_wrapper.optimizer.lr': 0.3,
    'optim_wrapper.optimizer.momentum': 0.9,
    'optim_wrapper.optimizer.weight_decay': 1e-4,
    'auto_scale_lr.base_batch_size': 256,
    'train_cfg.max_epochs': 200,
    'train_dataloader.batch_size': 128,
    'train_dataloader.dataset.data_root': 'data/coco',
    'train_dataloader.dataset.data_prefix': 'train2017',
    'train_dataloader.dataset.with_label': False,
}

CROP = {
    'num_large': 2,
    'large_size': 160,
    'large_scale': (0.2, 1.0),
    'num_small': 4,
    'small_size': 96,
    'small_scale': (0.05, 0.14),
    'constrained': True,
    'min_overlap': 0.2,
}


def lookup(cfg, dotted):
    value = cfg
    for part in dotted.split('.'):
        value = value[part]
    return value


@pytest.mark.parametrize('key, expected', sorted(MAIN_RECIPE.items()))
def test_main_recipe_matches_the_paper(key, expected):
    assert lookup(load('configs/knn_moco_coco.py'), key) == expected


def test_main_recipe_views_and_schedule():
    cfg = load('configs/knn_moco_coco.py')
    pipeline = cfg.train_dataloader.dataset.pipeline
    crop = [t for t in pipeline if t.type == 'ConstrainedMultiCrop'][0]
    for key, expected in CROP.items():
        assert tuple(crop[key]) == expected if isinstance(
            expected, tuple) else crop[key] == expected, key
    augment = [t for t in pipeline if t.type == 'MultiCropViewAugment'][0]
    assert augment.a_plus is True
    (scheduler, ) = cfg.param_scheduler
    assert scheduler.type == 'CosineAnnealingLR' and scheduler.by_epoch
    assert scheduler.T_max == 200 and scheduler.end == 200  # no warm-up
    cfg800 = load('configs/knn_moco_coco_800e.py')
    assert cfg800.train_cfg.max_epochs == 800
    assert cfg800.param_scheduler[0].T_max == 800
    assert cfg800.model.knn_warmup_epochs == 20


def _with_defaults(transform_cfg):
    """A transform config with the transform's own defaults filled in."""
    import inspect

    from mmpretrain.registry import TRANSFORMS
    cls = TRANSFORMS.get(transform_cfg['type'])
    resolved = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    resolved.update(transform_cfg)
    return {
        k: tuple(v) if isinstance(v, list) and not (v and isinstance(v[0], dict))
        else v
        for k, v in resolved.items()
    }


def _recipe(cfg):
    """What defines a pretraining run, flattened to comparable items."""
    flat = {}

    def walk(prefix, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f'{prefix}.{k}', v)
        elif isinstance(obj, (list, tuple)) and obj and isinstance(
                obj[0], dict):
            for i, v in enumerate(obj):
                walk(f'{prefix}.{i}', v)
        else:
            flat[prefix] = obj

    walk('model', cfg.model.to_dict())
    walk('pipeline',
         [_with_defaults(t) for t in cfg.train_dataloader.dataset.pipeline])
    walk('optim', cfg.optim_wrapper.to_dict())
    walk('sched', [dict(s) for s in cfg.param_scheduler])
    flat['epochs'] = cfg.train_cfg.max_epochs
    return flat


LADDER = [
    ('configs/ablation/1_moco_v2_coco.py', None),
    ('configs/ablation/2_mc_coco.py', {'model.num_small_crops',
                                       'pipeline.1.large_size',
                                       'pipeline.1.num_small',
                                       'pipeline.1.constrained'}),
    ('configs/ablation/3_cc_coco.py', {'pipeline.1.constrained'}),
    ('configs/ablation/4_m_coco.py', {'model.momentum'}),
    ('configs/ablation/5_aplus_coco.py', {'pipeline.2.a_plus'}),
    ('configs/ablation/6_nn_coco.py', {'model.head.use_knn'}),
]


def test_ablation_ladder_changes_one_thing_per_rung():
    first = load(LADDER[0][0])
    assert first.model.momentum == 0.001  # MoCo-v2's m = 0.999
    assert first.model.head.use_knn is False
    crop = first.train_dataloader.dataset.pipeline[1]
    assert crop.large_size == 224 and crop.num_small == 0
    previous = _recipe(first)
    for rel, changed in LADDER[1:]:
        current = _recipe(load(rel))
        differs = {
            k
            for k in previous.keys() | current.keys()
            if previous.get(k) != current.get(k)
        }
        assert differs == changed, rel
        previous = current


def test_last_rung_is_the_main_recipe():
    assert _recipe(load('configs/ablation/6_nn_coco.py')) == _recipe(
        load('configs/knn_moco_coco.py'))


def test_demo_inherits_the_main_recipe_and_overrides_only_cpu_settings():
    demo, main = _recipe(load('configs/knn_moco_demo.py')), _recipe(
        load('configs/knn_moco_coco.py'))
    differs = {k for k in demo.keys() | main.keys() if demo.get(k) != main.get(k)}
    allowed_prefixes = ('model.backbone.depth', 'model.backbone.stem_channels',
                        'model.backbone.base_channels', 'model.neck.', 'model.head.',
                        'model.knn_warmup_epochs', 'pipeline.1.large_size',
                        'pipeline.1.small_size', 'pipeline.2.key_transforms.2.sigma',
                        'pipeline.2.positive_transforms.2.sigma',
                        'optim.optimizer.lr', 'sched.0.', 'epochs')
    assert differs and all(k.startswith(allowed_prefixes) for k in differs), \
        differs
    # the recipe itself (CC, A+, m, NN, 4 small crops) is inherited, not restated
    assert demo['pipeline.1.constrained'] and demo['pipeline.2.a_plus']
    assert demo['model.momentum'] == 0.005 and demo['model.head.use_knn']
    assert demo['pipeline.1.num_small'] == demo['model.num_small_crops'] == 4
    # lr follows the linear scaling rule of the main recipe (lr 0.3 per 256 images):
    # inherited, and scaled by mmengine to the demo's batch (tests/test_first_run_guards.py)
    demo_cfg = load('configs/knn_moco_demo.py')
    assert demo['optim.optimizer.lr'] == main['optim.optimizer.lr'] == 0.3
    assert demo_cfg.auto_scale_lr == dict(base_batch_size=256, enable=True)
    # sizes scaled from the main recipe: small / large crop ratio and blur sigma per pixel,
    # the blur set in the spelled-out view transforms (no special argument)
    scale = demo['pipeline.1.large_size'] / 224  # MoCo-v2's sigma range is for 224 px
    for pipeline in ('key_transforms', 'positive_transforms'):
        key = f'pipeline.2.{pipeline}.2.sigma'
        assert tuple(main[key]) == (0.1, 2.0)  # MoCo-v2's
        assert tuple(demo[key]) == pytest.approx((0.1 * scale, 2.0 * scale), rel=0.03)
    assert demo['pipeline.2.blur_sigma'] is None and main['pipeline.2.blur_sigma'] is None
    assert (demo['pipeline.1.small_size'] / demo['pipeline.1.large_size'] ==
            pytest.approx(main['pipeline.1.small_size'] / main['pipeline.1.large_size'],
                          rel=0.05))
    # fewer keys than images: a queue longer than the dataset holds each image's own keys
    import inspect

    from revisit_ssl.utils.demo_data import make_demo_data
    num_train = inspect.signature(make_demo_data).parameters['num_train'].default
    assert demo['model.head.queue_len'] < num_train


def test_a_config_elsewhere_can_inherit_and_override_one_field(tmp_path):
    user_cfg = tmp_path / 'my_knn_moco.py'
    user_cfg.write_text(
        f"_base_ = ['{osp.join(ROOT, 'configs', 'knn_moco_coco.py')}']\n"
        'model = dict(head=dict(knn_k=10))\n')
    cfg = Config.fromfile(str(user_cfg))
    assert cfg.model.head.knn_k == 10
    assert cfg.model.head.knn_weight == 0.4
    assert cfg.train_dataloader.dataset.pipeline[1].constrained is True


# ----------------------------------------------------------------------------- fast path

#: Transform types that round-trip through PIL images or float (the previous, slow path).
SLOW_TYPES = {'HueSafeColorJitter', 'ColorJitter', 'GaussianBlur', 'RandomGrayscale',
              'AutoAugment', 'RandomFlip'}


def _types(obj):
    if isinstance(obj, dict):
        if 'type' in obj:
            yield obj['type']
        for value in obj.values():
            yield from _types(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _types(value)


@pytest.mark.parametrize('rel', PRETRAIN_CONFIGS)
def test_pretrain_configs_spell_out_the_fast_view_pipeline(rel):
    cfg = load(rel)
    pipeline = _pipeline_of(cfg.train_dataloader.dataset)
    crop = [t for t in pipeline if t['type'] == 'ConstrainedMultiCrop'][0]
    assert crop['backend'] == 'torch', rel
    if cfg.model.data_preprocessor.type == 'DeviceViewAugmentPreprocessor':
        # the accelerator path: the workers only crop, the preprocessor holds the view lists
        assert [t['type'] for t in pipeline] == [
            'StrictLoadImageFromFile', 'ConstrainedMultiCrop', 'PackInputs'], rel
        augment = cfg.model.data_preprocessor
        for key in ('key_transforms', 'view_transforms', 'auto_augment_transforms'):
            assert augment.get(key), (rel, key)
        types = set(_types(augment.to_dict()))
        assert not types & SLOW_TYPES, (rel, types & SLOW_TYPES)
        assert {'FastColorJitter', 'FastRandomGrayscale', 'FastGaussianBlur',
                'FastRandomFlip', 'FastAutoAugment'} <= types, rel
        return
    (augment, ) = [t for t in pipeline if t['type'] == 'MultiCropViewAugment']
    # every view's transforms are in the config, so a dump shows them
    for key in ('key_transforms', 'positive_transforms', 'auto_augment_transforms'):
        assert augment.get(key), (rel, key)
    types = set(_types(list(pipeline)))
    assert not types & SLOW_TYPES, (rel, types & SLOW_TYPES)
    assert {'FastColorJitter', 'FastRandomGrayscale', 'FastGaussianBlur', 'FastRandomFlip',
            'FastAutoAugment'} <= types, rel
    assert 'blur_sigma' not in augment, rel


def test_one_view_operation_changes_from_the_command_line():
    cfg = load('configs/knn_moco_coco.py')
    cfg.merge_from_dict({'train_dataloader.dataset.pipeline.2.key_transforms.2.sigma':
                         (0.5, 1.0)})
    augment = cfg.train_dataloader.dataset.pipeline[2]
    assert tuple(augment.key_transforms[2].sigma) == (0.5, 1.0)
    assert tuple(augment.positive_transforms[2].sigma) == (0.1, 2.0)
