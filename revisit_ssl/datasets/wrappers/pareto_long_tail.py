"""Long-tailed subsets whose class sizes follow a Pareto distribution (ImageNet-LT style)."""
from typing import Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from .subset_wrapper import SubsetDatasetWrapper

__all__ = ['IMAGENET_LT', 'pareto_class_counts', 'ParetoLongTailDataset']

#: ImageNet-LT's class-size recipe (Liu et al., 2019), the paper's IN-118K-LT.
IMAGENET_LT = dict(num_classes=1000, alpha=6., max_count=1280, min_count=5, total=115846)


def _profile(head_quantile: float, num_classes: int, alpha: float, max_count: int,
             min_count: int) -> np.ndarray:
    """Real-valued class sizes, largest first, for a given head quantile."""
    # Class r sits at quantile u_r = head_quantile * (C - 1 - r) / (C - 1) of a Pareto(alpha)
    # variable X = (1 - u) ** (-1 / alpha) >= 1; its size is X mapped affinely so that the head
    # (u = head_quantile) gets max_count and the tail (u = 0, X = 1) gets min_count.
    u = head_quantile * np.arange(num_classes - 1, -1, -1) / (num_classes - 1)
    x_minus_1 = np.expm1(-np.log1p(-u) / alpha)  # X - 1, accurate for small u
    return min_count + (max_count - min_count) * x_minus_1 / x_minus_1[0]


def pareto_class_counts(num_classes: int,
                        alpha: float = 6.,
                        max_count: int = 1280,
                        min_count: int = 5,
                        total: Optional[int] = None) -> np.ndarray:
    """Per-class image counts following a Pareto distribution, largest first.

    Class ``r`` (0 = head) gets the quantile ``u_r = q * (C - 1 - r) / (C - 1)`` of a Pareto
    variable with shape ``alpha``, ``X = (1 - u) ** (-1 / alpha)``, mapped affinely onto
    ``[min_count, max_count]`` (the head class gets exactly ``max_count``, the last exactly
    ``min_count``). The head quantile ``q`` sets how heavy the tail is: without ``total`` it is
    ``1 - 1 / C`` (where the largest of ``C`` Pareto draws is expected); with ``total`` it is
    solved so the counts sum to ``total``. Counts are then rounded by largest remainder, so
    they sum to ``total`` exactly and stay non-increasing.

    ImageNet-LT (Liu et al., 2019, `arXiv:1904.05160 <https://arxiv.org/abs/1904.05160>`_):
    ``alpha=6``, 1000 classes, 1280 to 5 images per class, 115,846 images. With
    ``total=115846`` this gives 387 / 470 / 143 many- (> 100) / medium- / few-shot (< 20)
    classes, against ImageNet-LT's 385 / 479 / 136; without ``total`` it gives 121,946 images.

    Args:
        num_classes (int): Number of classes ``C``.
        alpha (float): Pareto shape. Defaults to 6.
        max_count (int): Images of the largest class. Defaults to 1280.
        min_count (int): Images of the smallest class. Defaults to 5.
        total (int, optional): Total images. Must lie strictly between
            ``(C - 1) * min_count + max_count`` and ``C * (max_count + min_count) / 2``.
            Defaults to None (derived, see above).

    Returns:
        np.ndarray: ``(C, )`` int64 counts, non-increasing.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f'num_classes must be a positive int, got {num_classes!r}.')
    if alpha <= 0:
        raise ValueError(f'alpha (the Pareto shape) must be > 0, got {alpha}.')
    if not 1 <= min_count <= max_count:
        raise ValueError(f'Need 1 <= min_count <= max_count, got min_count={min_count}, '
                         f'max_count={max_count}.')
    if num_classes == 1 or min_count == max_count:
        counts = np.full(num_classes, max_count, dtype=np.int64)
        counts[-1] = min_count
        if total is not None and total != counts.sum():
            raise ValueError(f'With {num_classes} class(es) between {min_count} and '
                             f'{max_count} images the total can only be {counts.sum()}, '
                             f'got total={total}.')
        return counts

    if total is None:
        head_quantile = 1. - 1. / num_classes
    else:
        # The total falls monotonically from a linear profile (head_quantile -> 0) to a single
        # head class over a floor of min_count (head_quantile -> 1).
        low = (num_classes - 1) * min_count + max_count
        high = num_classes * (max_count + min_count) / 2
        if not low < total < high:
            raise ValueError(
                f'total={total} cannot be reached with {num_classes} classes of '
                f'{min_count}..{max_count} images: it must lie strictly between {low} '
                f'(one head class, all others at min_count) and {high:g} (linear profile).')
        lo, hi = 1e-12, 1. - 1e-15
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if _profile(mid, num_classes, alpha, max_count, min_count).sum() > total:
                lo = mid
            else:
                hi = mid
        head_quantile = 0.5 * (lo + hi)

    sizes = _profile(head_quantile, num_classes, alpha, max_count, min_count)
    sizes = np.clip(sizes, min_count, max_count)
    sizes[0], sizes[-1] = max_count, min_count
    target = int(round(sizes.sum())) if total is None else int(total)
    counts = np.floor(sizes).astype(np.int64)
    remainder = target - int(counts.sum())
    if remainder > 0:
        # Largest remainder; a stable sort keeps ties in rank order, so counts stay sorted.
        order = np.argsort(-(sizes - counts), kind='stable')
        counts[order[:remainder]] += 1
    counts = np.minimum(counts, max_count)
    return np.sort(counts)[::-1].copy()


@DATASETS.register_module()
class ParetoLongTailDataset(SubsetDatasetWrapper):
    """A long-tailed subset of a labelled dataset, class sizes from a Pareto distribution.

    The paper's IN-118K-LT is ImageNet-LT's recipe (Liu et al., 2019): shape ``alpha=6``,
    1000 classes, 1280 to 5 images per class, about 115.8K images. Class sizes come from
    :func:`pareto_class_counts`; which class gets which size (which classes are the head) is a
    seeded permutation, and the images of each class are a seeded sample without replacement.
    The same seed always gives the same subset.

    Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
    <https://arxiv.org/abs/2106.05967>`_ (Sec. 5, long-tailed ImageNet).

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='ParetoLongTailDataset', total=115846, seed=0,
        ...     dataset=dict(type='ImageNet', data_root='data/imagenet', split='train',
        ...                  pipeline=train_pipeline)))

    Args:
        dataset (BaseDataset | dict): A single-label dataset or its config.
        alpha (float): Pareto shape. Defaults to 6.
        max_count (int): Images of the largest class. Defaults to 1280.
        min_count (int): Images of the smallest class. Defaults to 5.
        total (int, optional): Total images; None derives it (see
            :func:`pareto_class_counts`). Defaults to None.
        seed (int): Seed of the class order and the image samples. Defaults to 0.
        allow_smaller (bool): A class with fewer images than its quota keeps all it has
            (the subset is then smaller than ``total``, and a warning says by how much)
            instead of raising. Defaults to False.
        lazy_init (bool): Defer loading and sampling to the first use. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 alpha: float = 6.,
                 max_count: int = 1280,
                 min_count: int = 5,
                 total: Optional[int] = None,
                 seed: int = 0,
                 allow_smaller: bool = False,
                 lazy_init: bool = False) -> None:
        self.alpha = alpha
        self.max_count = max_count
        self.min_count = min_count
        self.total = total
        self.allow_smaller = allow_smaller
        self.class_quota: Optional[np.ndarray] = None
        super().__init__(dataset, seed=seed, lazy_init=lazy_init)

    def _select_indices(self, rng: np.random.Generator) -> np.ndarray:
        if self.labels is None:
            raise ValueError(
                f'ParetoLongTailDataset needs class labels, but the wrapped '
                f'{type(self.dataset).__name__} has none (use a labelled dataset, e.g. '
                'ImageNet or CustomDataset with with_label=True).')
        num_classes = self._num_classes()
        sorted_counts = pareto_class_counts(num_classes, self.alpha, self.max_count,
                                            self.min_count, self.total)
        class_order = rng.permutation(num_classes)  # class_order[r] has the r-th largest size
        quota = np.empty(num_classes, dtype=np.int64)
        quota[class_order] = sorted_counts
        self.class_quota = quota

        available = np.bincount(self.labels, minlength=num_classes)
        short = np.flatnonzero(available < quota)
        if len(short) and not self.allow_smaller:
            details = '; '.join(f'class {self._class_name(c)} has {available[c]} images but '
                                f'its quota is {quota[c]}' for c in short[:5])
            more = f' (and {len(short) - 5} more classes)' if len(short) > 5 else ''
            raise ValueError(
                f'ParetoLongTailDataset: {len(short)} class(es) have fewer images than their '
                f'Pareto quota: {details}{more}. Lower max_count/total, or set '
                'allow_smaller=True to keep all images of such classes.')
        if len(short):
            missing = int((quota[short] - available[short]).sum())
            print_log(
                f'ParetoLongTailDataset: {len(short)} class(es) have fewer images than their '
                f'quota; keeping all of theirs, so the subset has {missing} images fewer '
                f'than {int(quota.sum())}.',
                logger='current',
                level=30)

        by_class = np.argsort(self.labels, kind='stable')
        starts = np.concatenate([[0], np.cumsum(available)])
        chosen = []
        for label in range(num_classes):
            members = by_class[starts[label]:starts[label + 1]]
            take = min(int(quota[label]), len(members))
            chosen.append(rng.choice(members, size=take, replace=False))
        return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        head = (f'{self.__class__.__name__}(alpha={self.alpha}, max_count={self.max_count}, '
                f'min_count={self.min_count}, total={self.total}, seed={self.seed}, '
                f'allow_smaller={self.allow_smaller}')
        if self._fully_initialized:
            head += f', num_samples={len(self.indices)}'
        return head + f', dataset={type(self.dataset).__name__})'
