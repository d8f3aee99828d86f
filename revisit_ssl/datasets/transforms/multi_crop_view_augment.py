"""Per-view augmentation of kNN-MoCo's views: MoCo-v2 for the key, optionally A+ for the rest."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .random_choice_auto_augment import RandomChoiceAutoAugment
from .view_pipelines import (MOCO_V2_BLUR_SIGMA, build_view_pipeline,
                             check_blur_sigma, moco_v2_view_transforms)

__all__ = ['MultiCropViewAugment']


def _to_three_channels(view: np.ndarray) -> np.ndarray:
    """Grey views (``(H, W)`` or ``(H, W, 1)``) as 3 equal BGR channels."""
    if view.ndim == 2:
        view = view[..., None]
    if view.shape[2] == 1:
        view = np.repeat(view, 3, axis=2)
    return view


@TRANSFORMS.register_module()
class MultiCropViewAugment(BaseTransform):
    """Augment each view made by :class:`ConstrainedMultiCrop` with its own pipeline.

    The key (view ``key_index``) always gets ``key_transforms`` (MoCo-v2's augmentations).
    The positives (the query and the small crops) get ``positive_transforms`` (also MoCo-v2's
    by default) or, with ``a_plus=True``, the paper's A+: :class:`RandomChoiceAutoAugment`
    choosing flip + AutoAugment with probability ``a_plus_prob`` and ``positive_transforms``
    otherwise. The key never takes the AutoAugment branch.

    Each view runs through its pipeline in a shallow copy of ``results`` whose ``img`` is that
    view, so per-view keys a transform adds (``flip``, ...) do not leak between views. Grey
    views are first made 3-channel, since the colour augmentations and the backbone need three.

    Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
    <https://arxiv.org/abs/2106.05967>`_.

    **Required Keys:** ``img`` (list of views, as :class:`ConstrainedMultiCrop` or
    ``MultiView`` leave it).

    **Modified Keys:** ``img`` (the augmented views, same order).

    **Added Keys:** ``auto_augmented_views`` (list[bool]): per view, whether it took the
    AutoAugment branch (all False without A+).

    Args:
        a_plus (bool): Use A+ on the positives. Defaults to False.
        a_plus_prob (float): Probability of the AutoAugment branch under A+, in ``[0, 1]``.
            Defaults to 0.5.
        key_transforms (list[dict | callable], optional): Pipeline of the key. Defaults to
            :func:`moco_v2_view_transforms`.
        positive_transforms (list[dict | callable], optional): Pipeline of the query and small
            crops (the standard branch under A+). Defaults to :func:`moco_v2_view_transforms`.
        key_index (int): Which view is the key. Defaults to 1 (order query, key, smalls).
        blur_sigma (Sequence[float], optional): ``(min, max)`` Gaussian-blur sigma of the
            default pipelines, for crops much smaller than 224 px (the demo's 32-px crops use
            ``(0.014, 0.29)``, MoCo-v2's range times 32 / 224). None keeps MoCo-v2's
            ``(0.1, 2.0)``. It only changes the default pipelines, so giving it together with
            both ``key_transforms`` and ``positive_transforms`` is an error. The configs set
            the blur in their spelled-out lists instead (``FastGaussianBlur`` ``sigma``).
        auto_augment_transforms (list[dict | callable], optional): The AutoAugment branch of
            A+ (used only with ``a_plus=True``). Defaults to
            :func:`auto_augment_view_transforms`. The configs spell out all three lists with
            the fast transforms (``FastColorJitter`` ..., ``FastAutoAugment``).
    """

    def __init__(self,
                 a_plus: bool = False,
                 a_plus_prob: float = 0.5,
                 key_transforms: Optional[List] = None,
                 positive_transforms: Optional[List] = None,
                 key_index: int = 1,
                 blur_sigma: Optional[Sequence[float]] = None,
                 auto_augment_transforms: Optional[List] = None) -> None:
        super().__init__()
        if (blur_sigma is not None and key_transforms is not None
                and positive_transforms is not None):
            raise ValueError(
                'blur_sigma only changes the default MoCo-v2 view pipelines, but both '
                'key_transforms and positive_transforms are given: set the blur range '
                'in those lists (GaussianBlur magnitude_range) instead.')
        self.blur_sigma = None if blur_sigma is None else check_blur_sigma(blur_sigma)
        default_blur = self.blur_sigma or MOCO_V2_BLUR_SIGMA
        if key_transforms is None:
            key_transforms = moco_v2_view_transforms(blur_sigma=default_blur)
        if positive_transforms is None:
            positive_transforms = moco_v2_view_transforms(blur_sigma=default_blur)
        self.a_plus = bool(a_plus)
        # Validated even without A+, so a typo fails now rather than when A+ is switched on.
        self.a_plus_prob = RandomChoiceAutoAugment.auto_augment_prob(a_plus_prob)
        self.key_index = key_index
        self.key_pipeline = build_view_pipeline(key_transforms)
        if self.a_plus:
            self.positive_pipeline = RandomChoiceAutoAugment(
                prob=a_plus_prob, standard_transforms=positive_transforms,
                auto_augment_transforms=auto_augment_transforms)
        else:
            self.positive_pipeline = build_view_pipeline(positive_transforms)

    def transform(self, results: Dict) -> Dict:
        """Augment every view of ``results['img']``.

        Args:
            results (dict): Result dict whose ``img`` is a list of views.

        Returns:
            dict: ``results`` with augmented views and ``auto_augmented_views``.
        """
        views = results['img']
        if not isinstance(views, (list, tuple)):
            raise TypeError(
                'MultiCropViewAugment expects results["img"] to be a list of views; put '
                'ConstrainedMultiCrop (or MultiView) before it in the pipeline.')
        if not -len(views) <= self.key_index < len(views):
            raise ValueError(f'key_index={self.key_index} but there are only {len(views)} '
                             'views.')
        key_index = self.key_index % len(views)
        out_views, auto_augmented = [], []
        for index, view in enumerate(views):
            view = _to_three_channels(view)
            view_results = dict(results, img=view, img_shape=view.shape[:2])
            pipeline = self.key_pipeline if index == key_index else self.positive_pipeline
            view_results = pipeline(view_results)
            out_views.append(view_results['img'])
            auto_augmented.append(bool(view_results.get('auto_augmented', False)))
        results['img'] = out_views
        results['auto_augmented_views'] = auto_augmented
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(a_plus={self.a_plus}, '
                f'a_plus_prob={self.a_plus_prob}, key_index={self.key_index}, '
                f'key={self.key_pipeline}, positives={self.positive_pipeline})')
