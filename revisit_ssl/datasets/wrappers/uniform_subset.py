"""Seeded uniform or class-balanced subsets of N images (IN-118K, OI-118K)."""
from typing import Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from .subset_wrapper import SubsetDatasetWrapper

__all__ = ['balanced_class_quota', 'UniformSubsetDataset']


def balanced_class_quota(available: np.ndarray, num_samples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Split ``num_samples`` over classes as evenly as their sizes allow.

    Every class gets ``num_samples // C``; a class with fewer images gives all it has and the
    shortfall is spread evenly over the others (water-filling); the last few images that do
    not divide evenly go to distinct classes chosen by ``rng``.

    Args:
        available (np.ndarray): ``(C, )`` images per class.
        num_samples (int): Images to pick, at most ``available.sum()``.
        rng (np.random.Generator): Chooses the classes that get the leftover images.

    Returns:
        np.ndarray: ``(C, )`` int64 quota, ``quota <= available``, summing to ``num_samples``.
    """
    available = np.asarray(available, dtype=np.int64)
    quota = np.zeros_like(available)
    remaining = int(num_samples)
    while remaining > 0:
        open_classes = np.flatnonzero(quota < available)
        share = remaining // len(open_classes)
        if share == 0:
            lucky = rng.choice(open_classes, size=remaining, replace=False)
            quota[lucky] += 1
            break
        add = np.minimum(share, available[open_classes] - quota[open_classes])
        quota[open_classes] += add
        remaining -= int(add.sum())
    return quota


@DATASETS.register_module()
class UniformSubsetDataset(SubsetDatasetWrapper):
    """A seeded random subset of ``num_samples`` images of another dataset.

    The paper's IN-118K (ImageNet) and OI-118K (OpenImages) are subsets of 118K images, the
    size of COCO train2017, to compare pretraining data at equal size. With labels the subset is
    class-balanced (``num_samples / C`` images per class, see :func:`balanced_class_quota`);
    without labels (or with ``class_balanced=False``) it is a uniform sample without
    replacement. The same seed always gives the same subset.

    Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
    <https://arxiv.org/abs/2106.05967>`_ (Sec. 5).

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='UniformSubsetDataset', num_samples=118287, seed=0,
        ...     dataset=dict(type='ImageNet', data_root='data/imagenet', split='train',
        ...                  pipeline=train_pipeline)))

    Args:
        dataset (BaseDataset | dict): The dataset or its config.
        num_samples (int): Images in the subset, at most ``len(dataset)``.
        class_balanced (bool, optional): Balance classes. None (default) balances when the
            dataset has labels; True without labels is an error.
        seed (int): Seed of the sample. Defaults to 0.
        lazy_init (bool): Defer loading and sampling to the first use. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 num_samples: int,
                 class_balanced: Optional[bool] = None,
                 seed: int = 0,
                 lazy_init: bool = False) -> None:
        if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f'num_samples must be a positive int, got {num_samples!r}.')
        self.num_samples = int(num_samples)
        self.class_balanced = class_balanced
        super().__init__(dataset, seed=seed, lazy_init=lazy_init)

    def _select_indices(self, rng: np.random.Generator) -> np.ndarray:
        size = len(self.dataset)
        if self.num_samples > size:
            raise ValueError(
                f'UniformSubsetDataset: num_samples={self.num_samples} but the wrapped '
                f'{type(self.dataset).__name__} has only {size} images.')
        balanced = self.class_balanced
        if balanced is None:
            balanced = self.labels is not None
        if not balanced:
            return rng.choice(size, size=self.num_samples, replace=False)
        if self.labels is None:
            raise ValueError(
                'UniformSubsetDataset: class_balanced=True needs labels, but the wrapped '
                f'{type(self.dataset).__name__} has none; use class_balanced=None or False.')
        available = np.bincount(self.labels, minlength=self._num_classes())
        present = np.flatnonzero(available > 0)
        quota = np.zeros_like(available)
        quota[present] = balanced_class_quota(available[present], self.num_samples, rng)
        share = self.num_samples // len(present)
        small = np.flatnonzero((available > 0) & (available < share))
        if len(small):
            print_log(
                f'UniformSubsetDataset: {len(small)} class(es) have fewer than the '
                f'{share} images of an even share; they give all theirs and the other '
                'classes make up the difference.',
                logger='current',
                level=30)
        by_class = np.argsort(self.labels, kind='stable')
        starts = np.concatenate([[0], np.cumsum(available)])
        return np.concatenate([
            rng.choice(by_class[starts[c]:starts[c + 1]], size=int(quota[c]), replace=False)
            for c in range(len(available))
        ])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_samples={self.num_samples}, '
                f'class_balanced={self.class_balanced}, seed={self.seed}, '
                f'dataset={type(self.dataset).__name__})')
