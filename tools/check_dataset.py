"""Decode every training image of a config once, before a long run, and list the bad ones.

Builds the config's ``train_dataloader.dataset`` through mmengine's registry (wrappers such as
``UniformSubsetDataset`` included) with the pipelines emptied, so nothing random runs, and
decodes each distinct image file in parallel with the config's own loading transform
(``StrictLoadImageFromFile`` / ``LoadImageFromFile`` settings: decoder backend, colour type,
file backend), i.e. exactly as training will. Reports

* errors (exit status 1): unreadable files (corrupt, truncated, not an image), empty (0-byte)
  files and files the dataset lists that do not exist; training stops at the first one
  (unless the pipeline sets ``skip_unreadable``, docs/transforms.md);
* warnings (exit status stays 0): grey images (one channel, or R == G == B after decoding:
  colour augmentation does nothing to them) and tiny images (shorter side below
  ``--min-size``, by default the config's large crop size: every crop is an upsampled blur).

Examples::

    python tools/check_dataset.py configs/knn_moco_coco.py
    python tools/check_dataset.py configs/knn_moco_demo.py --workers 2 \\
        --cfg-options train_dataloader.dataset.data_root=data/demo
    python tools/check_dataset.py configs/knn_moco_coco.py --min-size 0 --out bad_files.json
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, TRANSFORMS, init_default_scope
from mmengine.utils import track_parallel_progress, track_progress

import revisit_ssl  # noqa: F401  registers components
from revisit_ssl.datasets.transforms.strict_load_image import (
    StrictLoadImageFromFile, UnreadableImageError)
from revisit_ssl.utils.data_check import (DatasetNotFoundError,
                                          check_data_roots)

#: Result categories; the first three are errors.
ERRORS = ('unreadable', 'empty', 'missing')
WARNINGS = ('grey', 'tiny')
_LOADER_ARGS = ('color_type', 'imdecode_backend', 'backend_args', 'file_client_args')
_CROP_SIZE_ARGS = (('ConstrainedMultiCrop', 'large_size'), ('RandomResizedCrop', 'scale'),
                   ('RandomCrop', 'crop_size'), ('CenterCrop', 'crop_size'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Decode every training image of a config and list unreadable, empty, '
        'grey and tiny files (run it before pretraining).')
    parser.add_argument('config', help='training config file')
    parser.add_argument(
        '--workers',
        type=int,
        default=min(8, os.cpu_count() or 1),
        help='decoding processes (default: min(8, CPU cores)); 1 decodes in this process')
    parser.add_argument(
        '--min-size',
        type=int,
        default=None,
        help='report images whose shorter side is below this many pixels (default: the '
        "config's large crop size, e.g. ConstrainedMultiCrop.large_size; 0 = off)")
    parser.add_argument(
        '--max-list',
        type=int,
        default=20,
        help='list at most this many grey / tiny files each (errors are always listed in '
        'full; --out has everything). Default: 20')
    parser.add_argument('--out', help='also write every finding to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.dataset.data_root=/data/coco')
    return parser.parse_args(argv)


def _pipelines(dataset: dict) -> List[list]:
    """Every ``pipeline`` list of a dataset config and the ones it wraps."""
    found = []
    if not isinstance(dataset, dict):
        return found
    if isinstance(dataset.get('pipeline'), (list, tuple)):
        found.append(dataset['pipeline'])
    for sub in [dataset.get('dataset')] + list(dataset.get('datasets') or []):
        found.extend(_pipelines(sub))
    return found


def _without_pipelines(dataset: dict) -> dict:
    """A copy of the dataset config whose pipelines are empty (decode-only check)."""
    dataset = copy.deepcopy(dataset)

    def empty(cfg):
        if not isinstance(cfg, dict):
            return
        if 'pipeline' in cfg:
            cfg['pipeline'] = []
        for sub in [cfg.get('dataset')] + list(cfg.get('datasets') or []):
            empty(sub)

    empty(dataset)
    return dataset


def _type_name(transform: dict) -> str:
    kind = transform.get('type', '')
    return kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))


def loader_config(dataset: dict) -> dict:
    """The training pipeline's loading transform as a ``StrictLoadImageFromFile`` config
    (same decoder and file backend), without skipping: every bad file must be seen."""
    loader = dict(type='StrictLoadImageFromFile')
    for pipeline in _pipelines(dataset):
        for transform in pipeline:
            if isinstance(transform, dict) and _type_name(transform).split('.')[-1].endswith(
                    'LoadImageFromFile'):
                loader.update({k: transform[k] for k in _LOADER_ARGS if k in transform})
                return loader
    return loader


def default_min_size(dataset: dict) -> Tuple[int, Optional[str]]:
    """The pipeline's large crop size (shorter side) and where it comes from."""
    for pipeline in _pipelines(dataset):
        for transform in pipeline:
            if not isinstance(transform, dict):
                continue
            name = _type_name(transform).split('.')[-1]
            for kind, arg in _CROP_SIZE_ARGS:
                if name == kind and transform.get(arg) is not None:
                    size = transform[arg]
                    size = min(size) if isinstance(size, (list, tuple)) else size
                    return int(size), f'{kind}.{arg}'
    return 0, None


_LOADER = None


def _init_worker(loader_cfg: dict, scope: str) -> None:
    global _LOADER
    init_default_scope(scope)
    _LOADER = TRANSFORMS.build(loader_cfg)


def check_image(path: str) -> dict:
    """Decode one file with the worker's loader; ``status`` is 'ok' or an error category."""
    entry = dict(path=path, status='ok', reason='', height=None, width=None, grey=False)
    if not osp.exists(path) and '://' not in path:
        entry.update(status='missing', reason='file does not exist')
        return entry
    if '://' not in path and osp.getsize(path) == 0:
        entry.update(status='empty', reason='0 bytes')
        return entry
    try:
        img = _LOADER(dict(img_path=path))['img']
    except UnreadableImageError as error:  # the decoder's own error is the cause
        entry.update(status='unreadable',
                     reason=StrictLoadImageFromFile.failure_reason(path, error.__cause__))
        return entry
    except Exception as error:  # noqa: BLE001  report every file, whatever the decoder raises
        entry.update(status='unreadable', reason=f'{type(error).__name__}: {error}')
        return entry
    img = np.asarray(img)
    entry.update(height=int(img.shape[0]), width=int(img.shape[1]))
    if img.ndim == 2 or img.shape[2] == 1:
        entry['grey'] = True
    else:
        entry['grey'] = bool((img[..., :3] == img[..., :1]).all())
    return entry


def image_paths(dataset) -> List[str]:
    """Distinct ``img_path`` values of a built dataset, in dataset order."""
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    paths, seen = [], set()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        path = info.get('img_path')
        if path is None:
            raise KeyError(f'sample {i} of {type(dataset).__name__} has no img_path; '
                           'this tool checks image datasets only')
        if path not in seen:
            seen.add(path)
            paths.append(path)
    return paths


def summarise(results: List[dict], min_size: int) -> dict:
    """Findings per category (lists of result entries)."""
    found = {name: [] for name in ERRORS + WARNINGS}
    for entry in results:
        if entry['status'] != 'ok':
            found[entry['status']].append(entry)
            continue
        if entry['grey']:
            found['grey'].append(entry)
        if min_size and min(entry['height'], entry['width']) < min_size:
            found['tiny'].append(entry)
    return found


def report(found: dict, total: int, min_size: int, size_source: Optional[str],
           max_list: int) -> str:
    """The printed report: each finding, then one summary line per category."""
    lines = []
    source = f", the config's {size_source}" if size_source else ''
    labels = dict(
        unreadable='unreadable (corrupt, truncated or not an image)',
        empty='empty (0 bytes)',
        missing='missing (listed by the dataset, not on disk)',
        grey='grey (one channel, or R == G == B)',
        tiny=f'tiny (shorter side < {min_size} px{source})')
    for name in ERRORS + WARNINGS:
        entries = found[name]
        if not entries:
            continue
        kind = 'ERROR' if name in ERRORS else 'WARNING'
        lines.append(f'{kind}: {len(entries)} {labels[name]}:')
        shown = entries if name in ERRORS else entries[:max_list]
        for e in shown:
            detail = e['reason'] if name in ERRORS else f"{e['height']}x{e['width']}"
            lines.append(f"  {e['path']}  ({detail})")
        if len(shown) < len(entries):
            lines.append(f'  ... and {len(entries) - len(shown)} more (--out FILE.json lists '
                         'all)')
    bad = sum(len(found[n]) for n in ERRORS)
    ok = total - bad
    lines.append(f'Summary: {total} image files checked, {ok} decoded, '
                 + ', '.join(f'{len(found[n])} {n}' for n in ERRORS + WARNINGS)
                 + ('' if min_size else ' (tiny check off: --min-size 0)'))
    if bad:
        lines.append(
            'FAILED: training stops at the first unreadable file. Re-download, re-extract or '
            'remove these files, or skip them during training with '
            "dict(type='StrictLoadImageFromFile', skip_unreadable=True, max_skipped=N) "
            '(docs/transforms.md).')
    else:
        lines.append('OK: every file decodes' +
                     ('; grey / tiny files are warnings only.' if any(
                         found[n] for n in WARNINGS) else '.'))
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if not cfg.get('train_dataloader'):
        print(f'ERROR: {args.config} has no train_dataloader to check.', file=sys.stderr)
        return 2
    try:
        check_data_roots(cfg, dataloaders=('train_dataloader', ))
    except DatasetNotFoundError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f'ERROR: --workers must be >= 1, got {args.workers}', file=sys.stderr)
        return 2
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset = DATASETS.build(_without_pipelines(dataset_cfg))
    paths = image_paths(dataset)
    loader_cfg = loader_config(dataset_cfg)
    if args.min_size is None:
        min_size, size_source = default_min_size(dataset_cfg)
    else:
        min_size, size_source = args.min_size, None
    print(f'Checking {len(paths)} image files of train_dataloader.dataset '
          f'({type(dataset).__name__}) with {loader_cfg}, {args.workers} worker(s)',
          flush=True)
    if args.workers == 1:
        _init_worker(loader_cfg, scope)
        results = track_progress(check_image, paths, file=sys.stderr)
    else:
        results = track_parallel_progress(
            check_image,
            paths,
            args.workers,
            initializer=_init_worker,
            initargs=(loader_cfg, scope),
            chunksize=max(1, min(64, len(paths) // (args.workers * 16))),
            file=sys.stderr)
    found = summarise(results, min_size)
    print(report(found, len(paths), min_size, size_source, args.max_list))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, num_files=len(paths), min_size=min_size,
                           loader=loader_cfg, **found), f, indent=1)
        print(f'Findings written to {args.out}')
    return 1 if any(found[n] for n in ERRORS) else 0


if __name__ == '__main__':
    sys.exit(main())
