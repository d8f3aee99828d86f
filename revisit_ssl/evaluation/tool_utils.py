"""Command-line plumbing shared by the tools in ``tools/analysis/``.

Every tool takes ``CONFIG CHECKPOINT`` (the pretraining config the backbone and the input
normalisation are built from, and a checkpoint, a converted backbone file or ``random``), the
same data options and ``--out``; this module holds those arguments once (model, class folders,
VOC classification, loader) and turns them into a feature extractor, datasets, features and
the result file.
"""
import argparse
import csv
import os
import os.path as osp
import time
from typing import List, Optional, Tuple

import mmengine
import torch
from mmengine.config import Config

from .average_precision import AP_METHODS
from .backbone_loader import RANDOM_INIT, load_backbone, load_config
from .data import (build_eval_dataloader, build_labelled_loaders,
                   eval_pipeline, folder_dataset, load_voc_classification)
from .feature_extractor import (FeatureExtractor, ImageNormalizer,
                                extract_features)

__all__ = [
    'add_model_args', 'add_folder_data_args', 'add_resolution_args',
    'add_voc_args', 'add_loader_args', 'default_device', 'build_extractor',
    'monitor_hook_cfg', 'labelled_datasets', 'extract', 'voc_features',
    'default_out_path', 'write_result'
]


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``CONFIG CHECKPOINT --encoder --device``."""
    parser.add_argument(
        'config',
        help='pretraining config (model.backbone and the data preprocessor '
        'normalisation are built from it)')
    parser.add_argument(
        'checkpoint',
        help='mmengine checkpoint of a pretraining run, a converted '
        f'backbone-only file, or "{RANDOM_INIT}" for the random-init baseline')
    parser.add_argument(
        '--encoder',
        choices=('online', 'momentum'),
        default='online',
        help='which backbone of the checkpoint: the online (query) encoder, '
        'as papers evaluate, or the momentum (key) encoder')
    parser.add_argument(
        '--device',
        default=None,
        help='torch device; defaults to cuda when available, else cpu')


def add_folder_data_args(parser: argparse.ArgumentParser,
                         train_default: str = 'train',
                         test_default: str = 'val') -> None:
    """Labelled class-folder data options and the evaluation resolution."""
    parser.add_argument(
        '--data-root',
        help='root of labelled class folders, <root>/<split>/<class>/*.jpg '
        '(data/demo for the demo). Defaults to the labelled splits of the '
        "config's KNNMonitorHook, if it has one")
    parser.add_argument(
        '--train-split',
        default=train_default,
        help='training (memory) split folder under --data-root')
    parser.add_argument(
        '--test-split',
        default=test_default,
        help='evaluated split folder under --data-root')
    add_resolution_args(parser)


def add_resolution_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--img-size',
        type=int,
        default=None,
        help='centre-crop size of the evaluation pipeline; defaults to the '
        "KNNMonitorHook's pipeline of the config, else 224")
    parser.add_argument(
        '--resize-size',
        type=int,
        default=None,
        help='short edge before the crop (default img-size * 8/7)')


def add_voc_args(parser: argparse.ArgumentParser,
                 train_flag: str = '--train-split',
                 test_flag: str = '--test-split') -> argparse._ArgumentGroup:
    """VOC classification options: ``--voc-root``, the two image sets, ``--ap-method``.

    Args:
        parser (ArgumentParser): The tool's parser.
        train_flag (str): Flag of the training image set (``args.voc_train_split``); a tool
            that also reads class folders names it ``--voc-train-split``.
        test_flag (str): Flag of the test image set (``args.voc_test_split``).

    Returns:
        The argument group, for the tool's own VOC options.
    """
    voc = parser.add_argument_group('VOC classification')
    voc.add_argument(
        '--voc-root',
        default='data/VOCdevkit/VOC2007',
        help='VOC folder with ImageSets/Main/<split>.txt, Annotations/*.xml '
        'and JPEGImages/*.jpg')
    voc.add_argument(train_flag, dest='voc_train_split', default='trainval',
                     help='training image set')
    voc.add_argument(test_flag, dest='voc_test_split', default='test',
                     help='test image set (disjoint from the training one)')
    voc.add_argument(
        '--ap-method',
        choices=AP_METHODS,
        default='area',
        help="headline AP: 'area' (VOC2010+ / Goyal et al. benchmark) or "
        "'11point' (VOC2007 devkit); both are written")
    return voc


def add_loader_args(parser: argparse.ArgumentParser,
                    out_help: str = 'result file (.json, or .csv)') -> None:
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--out', default=None, help=out_help)
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bars')


def default_device(device: Optional[str]) -> str:
    if device:
        return device
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def build_extractor(args: argparse.Namespace,
                    pool: bool = True,
                    l2_normalize: bool = True,
                    overrides: Optional[dict] = None
                    ) -> Tuple[FeatureExtractor, dict, Config]:
    """Feature extractor from ``CONFIG CHECKPOINT --encoder --device``."""
    cfg = load_config(args.config)
    device = default_device(args.device)
    backbone, info = load_backbone(cfg, args.checkpoint, args.encoder,
                                   overrides, device,
                                   seed=getattr(args, 'seed', 0))
    normalizer = ImageNormalizer.from_config(cfg).to(device)
    info['device'] = device
    return FeatureExtractor(backbone, normalizer, pool,
                            l2_normalize).eval(), info, cfg


def monitor_hook_cfg(cfg: Config) -> Optional[dict]:
    """The config's ``KNNMonitorHook`` entry of ``custom_hooks``, if any."""
    for hook in cfg.get('custom_hooks', None) or []:
        if str(hook.get('type', '')).split('.')[-1] == 'KNNMonitorHook':
            return hook
    return None


def _pipeline(args: argparse.Namespace, hook: Optional[dict]) -> List[dict]:
    if args.img_size:
        return eval_pipeline(args.img_size, args.resize_size)
    if hook is not None:
        return list(hook['val_dataloader']['dataset']['pipeline'])
    return eval_pipeline(224, args.resize_size)


def labelled_datasets(args: argparse.Namespace, cfg: Config) -> tuple:
    """``(train_dataset, test_dataset, description)`` of labelled single-label data."""
    hook = monitor_hook_cfg(cfg)
    pipeline = _pipeline(args, hook)
    if args.data_root:
        train = folder_dataset(args.data_root, args.train_split, pipeline)
        test = folder_dataset(args.data_root, args.test_split, pipeline,
                              train.metainfo['classes'])
        source = dict(
            data_root=args.data_root,
            train_split=args.train_split,
            test_split=args.test_split)
    elif hook is not None:  # the monitor's own loaders, with this pipeline
        loaders = [
            dict(hook[key],
                 dataset=dict(hook[key]['dataset'], pipeline=pipeline))
            for key in ('train_dataloader', 'val_dataloader')
        ]
        train, test = (loader.dataset for loader in build_labelled_loaders(
            *loaders, owner='the KNNMonitorHook of the config'))
        source = dict(from_config='custom_hooks KNNMonitorHook')
    else:
        raise ValueError(
            'no labelled data: pass --data-root DIR with class folders '
            'DIR/<train-split>/<class>/*.jpg and DIR/<test-split>/<class>/*.jpg '
            '(e.g. --data-root data/demo), or use a config whose custom_hooks '
            'has a KNNMonitorHook')
    source.update(
        classes=list(train.metainfo['classes']),
        num_train=len(train),
        num_test=len(test),
        pipeline=pipeline)
    return train, test, source


def extract(extractor: FeatureExtractor,
            dataset,
            args: argparse.Namespace,
            desc: str,
            with_labels: bool = True
            ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Features (and single labels) of a dataset, in order, batched per ``--batch-size``."""
    loader = build_eval_dataloader(dataset, args.batch_size, args.num_workers)
    return extract_features(
        extractor, loader, progress=not args.no_progress, desc=desc,
        with_labels=with_labels)


def voc_features(args: argparse.Namespace,
                 extractor: FeatureExtractor) -> Tuple[dict, dict, dict]:
    """The VOC flow of the classification tools: both image sets, their features.

    Returns:
        tuple[dict, dict, dict]: ``train`` and ``test`` (each ``x`` features as numpy,
        ``targets``, ``difficult``) and the ``data`` entry of the result file.
    """
    pipeline = eval_pipeline(args.img_size or 224, args.resize_size)
    train = load_voc_classification(args.voc_root, args.voc_train_split,
                                    pipeline=pipeline)
    test = load_voc_classification(args.voc_root, args.voc_test_split,
                                   train.classes, pipeline)
    overlap = set(train.img_paths) & set(test.img_paths)
    if overlap:
        raise ValueError(
            f'{len(overlap)} images are in both the training image set '
            f'{args.voc_train_split!r} and the test image set '
            f'{args.voc_test_split!r}; choose disjoint image sets')
    splits = []
    for split, name in ((train, args.voc_train_split),
                        (test, args.voc_test_split)):
        x, _ = extract(extractor, split.dataset, args, name, with_labels=False)
        splits.append(dict(x=x.numpy(), targets=split.targets,
                           difficult=split.difficult))
    data = dict(
        voc_root=args.voc_root,
        train_split=args.voc_train_split,
        test_split=args.voc_test_split,
        classes=list(train.classes),
        num_train=len(train.img_paths),
        num_test=len(test.img_paths),
        pipeline=pipeline)
    return splits[0], splits[1], data


def default_out_path(args: argparse.Namespace, tool: str,
                     ext: str = '.json') -> str:
    stem = osp.splitext(osp.basename(args.config))[0]
    ckpt = osp.splitext(osp.basename(args.checkpoint))[0]
    return osp.join('work_dirs', 'analysis', stem, f'{tool}_{ckpt}{ext}')


def write_result(result: dict, out: str) -> str:
    """Write ``result`` as JSON, or its scalar entries as a one-row CSV for ``.csv`` paths.

    Returns:
        str: The path written.
    """
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    result = dict(result, written_at=time.strftime('%Y-%m-%d %H:%M:%S'))
    if out.endswith('.csv'):
        flat = {
            k: v
            for k, v in _flatten(result).items()
            if isinstance(v, (int, float, str, bool)) or v is None
        }
        with open(out, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(flat))
            writer.writeheader()
            writer.writerow(flat)
    else:
        mmengine.dump(result, out, indent=2)
    return out


def _flatten(d: dict, prefix: str = '') -> dict:
    flat = {}
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            flat.update(_flatten(v, f'{key}.'))
        else:
            flat[key] = v
    return flat
