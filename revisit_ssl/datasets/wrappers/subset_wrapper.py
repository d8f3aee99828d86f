"""Base of the dataset wrappers that keep a fixed, seeded subset of another dataset."""
import copy
from typing import Any, List, Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init
from mmpretrain.registry import DATASETS

__all__ = ['SubsetDatasetWrapper', 'get_single_labels']


def get_single_labels(dataset: BaseDataset) -> Optional[np.ndarray]:
    """One integer label per sample of ``dataset``, or None when it has no labels.

    Uses ``get_gt_labels()`` (mmpretrain datasets) or ``get_cat_ids()`` (mmengine datasets).
    Unlabelled datasets (e.g. mmpretrain's ``CustomDataset(with_label=False)``) give None.

    Args:
        dataset (BaseDataset): A fully initialised dataset.

    Returns:
        np.ndarray | None: ``(len(dataset), )`` int64 labels.

    Raises:
        ValueError: If a sample has several labels (a multi-label dataset).
    """
    try:
        if hasattr(dataset, 'get_gt_labels'):
            labels = [np.asarray(label).reshape(-1) for label in dataset.get_gt_labels()]
        else:
            labels = [np.asarray(dataset.get_cat_ids(i)).reshape(-1) for i in range(len(dataset))]
    except (KeyError, NotImplementedError):
        return None
    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    bad = next((i for i, label in enumerate(labels) if label.size != 1), None)
    if bad is not None:
        raise ValueError(
            f'Sample {bad} of {type(dataset).__name__} has {labels[bad].size} labels; class '
            'subsets need exactly one label per sample (single-label classification data).')
    return np.concatenate(labels).astype(np.int64)


class SubsetDatasetWrapper:
    """A seeded subset of a dataset, built lazily like mmengine's dataset wrappers.

    Subclasses implement :meth:`_select_indices`. ``__getitem__`` runs the wrapped dataset's
    pipeline on the selected sample, so the wrapper can stand wherever a dataset config stands
    (``train_dataloader.dataset``).

    Args:
        dataset (BaseDataset | dict): The dataset to take the subset from, or its config
            (built with mmpretrain's ``DATASETS``).
        seed (int): Seed of every random choice of the subset. Defaults to 0.
        lazy_init (bool): Defer loading annotations and choosing the subset to the first
            use, as mmengine's wrappers. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 seed: int = 0,
                 lazy_init: bool = False) -> None:
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(dataset)
        elif isinstance(dataset, BaseDataset):
            self.dataset = dataset
        else:
            raise TypeError(f'{type(self).__name__}: dataset must be a dataset or a config '
                            f'dict, got {type(dataset).__name__}.')
        self.seed = seed
        self._metainfo = self.dataset.metainfo
        self._fully_initialized = False
        self.indices: List[int] = []
        self.labels: Optional[np.ndarray] = None
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's meta information (a copy)."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Load the wrapped dataset and choose the subset (once)."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        self.labels = get_single_labels(self.dataset)
        indices = self._select_indices(np.random.default_rng(self.seed))
        self.indices = [int(i) for i in np.sort(np.asarray(indices, dtype=np.int64))]
        self._fully_initialized = True

    def _select_indices(self, rng: np.random.Generator) -> np.ndarray:
        """Return the indices of the wrapped dataset that form the subset."""
        raise NotImplementedError

    def _num_classes(self) -> int:
        classes = self._metainfo.get('classes')
        if classes:
            return len(classes)
        return int(self.labels.max()) + 1 if self.labels is not None and len(
            self.labels) else 0

    def _class_name(self, label: int) -> str:
        classes = self._metainfo.get('classes')
        if classes and 0 <= label < len(classes):
            return f"{label} ('{classes[label]}')"
        return str(label)

    @force_full_init
    def get_class_counts(self) -> np.ndarray:
        """Images per class in the subset, indexed by class label.

        Returns:
            np.ndarray: ``(num_classes, )`` int64 histogram.
        """
        if self.labels is None:
            raise ValueError(f'{type(self).__name__}: the wrapped '
                             f'{type(self.dataset).__name__} has no labels, so there are no '
                             'class counts.')
        return np.bincount(self.labels[self.indices],
                           minlength=self._num_classes()).astype(np.int64)

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """Annotation of the ``idx``-th sample of the subset."""
        return self.dataset.get_data_info(self.indices[idx])

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of the ``idx``-th sample of the subset."""
        return self.dataset.get_cat_ids(self.indices[idx])

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Labels of the subset's samples, in subset order."""
        if self.labels is None:
            raise ValueError(f'{type(self.dataset).__name__} has no labels.')
        return self.labels[self.indices]

    @force_full_init
    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            self.full_init()
        return self.dataset[self.indices[idx]]
