"""Check a config's dataset folders before the Runner builds any dataloader.

Without this, a missing dataset surfaces as a traceback from deep inside a dataset's
``load_data_list`` (or, worse, as an empty dataset), and an image folder without images as
mmpretrain's ``Found 0 files in subfolders of ...`` traceback from the dataloader build.
:func:`check_data_roots` stops with one message that names the missing path (or the folder
without images and the extensions looked for), the expected layout (the config's
``data_layout`` text) and the ``--cfg-options`` key to change.
"""
import inspect
import os
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

__all__ = [
    'DatasetNotFoundError', 'EmptyImageFolderError', 'check_data_roots',
    'image_extensions'
]

_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class DatasetNotFoundError(FileNotFoundError):
    """A dataset path named by the config does not exist."""


class EmptyImageFolderError(DatasetNotFoundError):
    """A ``CustomDataset``-style image folder exists but holds no image file."""


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


def _custom_dataset_class(dataset: dict) -> Optional[type]:
    """The dataset's class when it is mmpretrain's ``CustomDataset`` or a subclass."""
    from mmpretrain.datasets import CustomDataset
    from mmpretrain.registry import DATASETS
    kind = dataset.get('type')
    if isinstance(kind, str):
        try:
            kind = DATASETS.get(kind)
        except Exception:  # noqa: BLE001  another scope's name that does not resolve here
            return None
    if isinstance(kind, type) and issubclass(kind, CustomDataset):
        return kind
    return None


def image_extensions(dataset: dict, cls: Optional[type] = None) -> Tuple[str, ...]:
    """The file extensions a ``CustomDataset``-style dataset config accepts, lower case.

    The config's ``extensions``, else the class's ``IMG_EXTENSIONS`` (``ImageNet``), else
    the default of ``CustomDataset.__init__`` (mmpretrain 1.2: ``.jpg .jpeg .png .ppm .bmp
    .pgm .tif``): the same rule the dataset applies when it lists its folder.

    Args:
        dataset (dict): The dataset config.
        cls (type, optional): Its class; resolved from ``dataset['type']`` when omitted.
    """
    from mmpretrain.datasets import CustomDataset
    cls = cls or _custom_dataset_class(dataset) or CustomDataset
    extensions = dataset.get('extensions') or getattr(cls, 'IMG_EXTENSIONS', None) or (
        inspect.signature(CustomDataset.__init__).parameters['extensions'].default)
    return tuple(sorted({e.lower() for e in extensions}))


def _image_folder(dataset: dict, cls: type) -> Optional[str]:
    """The folder a ``CustomDataset`` lists for images, or None when it reads an
    annotation file instead (or the folder is remote)."""
    from mmpretrain.datasets import ImageNet
    root = osp.expanduser(dataset.get('data_root') or '')
    prefix = dataset.get('data_prefix') or ''
    ann_file = dataset.get('ann_file') or ''
    split = dataset.get('split') or ''
    if split and issubclass(cls, ImageNet):  # ImageNet(split=...) fills both in
        prefix = prefix or split
        default_ann = osp.join(root, 'meta', f'{split}.txt')
        if not ann_file and osp.exists(default_ann):
            ann_file = default_ann
    if ann_file:
        return None
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    if not isinstance(prefix, str):
        return None
    prefix = osp.expanduser(prefix)
    folder = prefix if osp.isabs(prefix) or not root else osp.join(root, prefix)
    if not folder or _is_remote(folder) or not osp.isdir(folder):
        return None  # remote, or missing (reported by _missing_path)
    return folder


def _has_image(folder: str, extensions: Sequence[str],
               others: List[str]) -> bool:
    """Whether any file below ``folder`` ends in one of ``extensions`` (case-insensitive).

    Stops at the first image; on the way, collects up to 5 other file names into ``others``.
    Follows symlinked folders, as mmengine's local backend does when the dataset lists them.
    """
    for dirpath, _, files in os.walk(folder, followlinks=True):
        for name in files:
            if name.lower().endswith(tuple(extensions)):
                return True
            if len(others) < 5:
                others.append(osp.relpath(osp.join(dirpath, name), folder))
    return False


def _empty_image_folder(dataset: dict) -> Optional[str]:
    """Why a ``CustomDataset``-style folder has nothing to load, or None when it has images."""
    cls = _custom_dataset_class(dataset)
    if cls is None:
        return None
    folder = _image_folder(dataset, cls)
    if folder is None:
        return None
    extensions = image_extensions(dataset, cls)
    from mmpretrain.datasets import CustomDataset
    params = inspect.signature(cls.__init__).parameters
    if 'with_label' not in params:  # e.g. ImageNet passes CustomDataset's default on
        params = inspect.signature(CustomDataset.__init__).parameters
    with_label = dataset.get('with_label', params['with_label'].default)
    others: List[str] = []
    if with_label is not False:  # images are looked for in class sub-folders only
        subdirs = sorted(d for d in os.listdir(folder)
                         if osp.isdir(osp.join(folder, d)))
        if any(_has_image(osp.join(folder, d), extensions, others) for d in subdirs):
            return None
        where = (f'in the {len(subdirs)} class sub-folder(s) of {folder!r}'
                 if subdirs else f'{folder!r} has no class sub-folder')
        top = [n for n in os.listdir(folder) if n.lower().endswith(extensions)]
        hint = (f'; it holds {len(top)} image(s) directly, which with_label=True ignores: '
                'move them into <class>/ sub-folders or set with_label=False' if top else '')
    else:
        if _has_image(folder, extensions, others):
            return None
        where, hint = f'in {folder!r} or its sub-folders', ''
    seen = (f'; other files found, e.g. {", ".join(map(repr, others))}'
            if others else '; the folder tree holds no file at all')
    return (f'no image file {where} (type={dataset.get("type")}, with_label={with_label}, '
            f'extensions looked for: {" ".join(extensions)}, case-insensitive){seen}{hint}')


def check_data_roots(cfg: Config, dataloaders=_DATALOADERS) -> None:
    """Raise :class:`DatasetNotFoundError` if a dataloader's dataset folder is missing, or
    :class:`EmptyImageFolderError` if a ``CustomDataset``-style image folder (no
    ``ann_file``) holds no file with one of the dataset's image extensions.

    Args:
        cfg (Config): A full training / testing config.
        dataloaders (Sequence[str]): Dataloader keys to check; ``None`` entries are skipped.

    Raises:
        DatasetNotFoundError: With the missing path, the expected layout (``cfg.data_layout``
            when the config defines it) and the ``--cfg-options`` key to point elsewhere.
        EmptyImageFolderError: With the folder, the extensions looked for, the layout and
            the ``--cfg-options`` keys (``data_root`` / ``data_prefix``, or ``extensions``).
    """
    for name in dataloaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for key, dataset in _iter_datasets(loader.get('dataset'),
                                           f'{name}.dataset'):
            layout = cfg.get('data_layout') or (
                'see the docstring of the dataset config this config '
                'inherits')
            missing = _missing_path(dataset)
            if missing is None:
                empty = _empty_image_folder(dataset)
                if empty is not None:
                    raise EmptyImageFolderError(
                        f'Dataset for {name} has no images: {empty}.\n'
                        f'Expected layout:\n{layout.rstrip()}\n'
                        f'Put the images there, or point the config at your copy with\n'
                        f'  --cfg-options {key}.data_root=/path/to/your/copy  '
                        f'(or {key}.data_prefix=...)\n'
                        f'For other file types: --cfg-options '
                        f'{key}.extensions=[.jpg,.webp]')
                continue
            field, path = missing
            fix = (f'{key}.data_root=/path/to/your/copy' if field == 'data_root'
                   else f'{key}.{field}=...  (or {key}.data_root=...)')
            raise DatasetNotFoundError(
                f'Dataset for {name} not found: {field} {path!r} does not '
                f'exist (type={dataset.get("type")}).\n'
                f'Expected layout:\n{layout.rstrip()}\n'
                f'Put the data there, or point the config at your copy with\n'
                f'  --cfg-options {fix}')
