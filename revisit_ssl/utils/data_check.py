"""Check a config's dataset folders before the Runner builds any dataloader.

Without this, a missing dataset surfaces as a traceback from deep inside a dataset's
``load_data_list`` (or, worse, as an empty dataset). :func:`check_data_roots` stops with one
message that names the missing path, the expected layout (the config's ``data_layout`` text)
and the ``--cfg-options`` key to change.
"""
import os.path as osp
from typing import Iterator, Optional, Tuple

from mmengine.config import Config

__all__ = ['DatasetNotFoundError', 'check_data_roots']

_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class DatasetNotFoundError(FileNotFoundError):
    """A dataset path named by the config does not exist."""


def _iter_datasets(dataset: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield ``(cfg_key, dataset_cfg)`` for a dataset config and the ones it wraps."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('dataset'), dict):  # RepeatDataset, our wrappers, ...
        yield from _iter_datasets(dataset['dataset'], f'{key}.dataset')
    if isinstance(dataset.get('datasets'), (list, tuple)):  # ConcatDataset
        for i, sub in enumerate(dataset['datasets']):
            yield from _iter_datasets(sub, f'{key}.datasets.{i}')
    if 'data_root' in dataset or 'data_prefix' in dataset or 'ann_file' in dataset:
        yield key, dataset


def _is_remote(path: str) -> bool:
    return '://' in path


def _missing_path(dataset: dict) -> Optional[Tuple[str, str]]:
    """Return ``(field, path)`` of the first path the dataset needs that is missing."""
    root = dataset.get('data_root') or ''
    if root and not _is_remote(root) and not osp.isdir(root):
        return 'data_root', root
    prefix = dataset.get('data_prefix') or ''
    prefixes = prefix.values() if isinstance(prefix, dict) else [prefix]
    for p in prefixes:
        if not isinstance(p, str) or not p:
            continue
        path = p if osp.isabs(p) or _is_remote(p) else osp.join(root, p)
        if not _is_remote(path) and not osp.exists(path):
            return 'data_prefix', path
    ann = dataset.get('ann_file') or ''
    if isinstance(ann, str) and ann:
        path = ann if osp.isabs(ann) or _is_remote(ann) else osp.join(root, ann)
        if not _is_remote(path) and not osp.exists(path):
            return 'ann_file', path
    return None


def check_data_roots(cfg: Config, dataloaders=_DATALOADERS) -> None:
    """Raise :class:`DatasetNotFoundError` if a dataloader's dataset folder is missing.

    Args:
        cfg (Config): A full training / testing config.
        dataloaders (Sequence[str]): Dataloader keys to check; ``None`` entries are skipped.

    Raises:
        DatasetNotFoundError: With the missing path, the expected layout (``cfg.data_layout``
            when the config defines it) and the ``--cfg-options`` key to point elsewhere.
    """
    for name in dataloaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for key, dataset in _iter_datasets(loader.get('dataset'),
                                           f'{name}.dataset'):
            missing = _missing_path(dataset)
            if missing is None:
                continue
            field, path = missing
            layout = cfg.get('data_layout') or (
                'see the docstring of the dataset config this config '
                'inherits')
            fix = (f'{key}.data_root=/path/to/your/copy' if field == 'data_root'
                   else f'{key}.{field}=...  (or {key}.data_root=...)')
            raise DatasetNotFoundError(
                f'Dataset for {name} not found: {field} {path!r} does not '
                f'exist (type={dataset.get("type")}).\n'
                f'Expected layout:\n{layout.rstrip()}\n'
                f'Put the data there, or point the config at your copy with\n'
                f'  --cfg-options {fix}')
