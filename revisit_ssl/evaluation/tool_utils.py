"""Command-line plumbing shared by the tools in ``tools/analysis/``.

Every tool takes ``CONFIG CHECKPOINT`` (the pretraining config the backbone and the input
normalisation are built from, and a checkpoint, a converted backbone file or ``random``), the
same data options and ``--out``; this module turns those arguments into a feature extractor
and labelled datasets and writes the result file.
"""
import argparse
import csv
import json
import os
import os.path as osp
import time
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config

from .backbone_loader import RANDOM_INIT, load_backbone, load_config
from .data import eval_pipeline, folder_dataset, make_dataloader
from .feature_extractor import (FeatureExtractor, ImageNormalizer,
                                extract_features)

__all__ = [
    'add_model_args', 'add_folder_data_args', 'add_loader_args',
    'default_device', 'build_extractor', 'monitor_hook_cfg',
    'labelled_datasets', 'extract', 'default_out_path', 'write_result'
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
    from mmpretrain.registry import DATASETS
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
    elif hook is not None:
        datasets = []
        for key in ('train_dataloader', 'val_dataloader'):
            ds_cfg = dict(hook[key]['dataset'])
            ds_cfg['pipeline'] = pipeline
            datasets.append(DATASETS.build(ds_cfg))
        train, test = datasets
        if tuple(train.metainfo.get('classes') or ()) != tuple(
                test.metainfo.get('classes') or ()):
            raise ValueError('the KNNMonitorHook train and val splits have '
                             'different classes; labels would not agree')
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
            desc: str) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    loader = make_dataloader(dataset, args.batch_size, args.num_workers)
    return extract_features(
        extractor, loader, progress=not args.no_progress, desc=desc)


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
        with open(out, 'w') as f:
            json.dump(result, f, indent=2)
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
