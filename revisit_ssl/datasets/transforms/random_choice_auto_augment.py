"""A+: a random choice between AutoAugment and the standard MoCo-v2 augmentations."""
import math
import numbers
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

from .view_pipelines import (auto_augment_view_transforms, build_view_pipeline,
                             moco_v2_view_transforms)

__all__ = ['RandomChoiceAutoAugment']


@TRANSFORMS.register_module()
class RandomChoiceAutoAugment(BaseTransform):
    """The paper's A+ augmentation of one positive view.

    With probability ``prob`` the view gets a horizontal flip and AutoAugment with the ImageNet
    policy; otherwise the standard MoCo-v2 augmentations. The paper applies it to the positives
    (query and small crops) only, never to the key: see :class:`MultiCropViewAugment`, whose
    ``a_plus=True`` does that.

    Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
    <https://arxiv.org/abs/2106.05967>`_ (Sec. 4, "A+").

    **Required Keys:** ``img``. **Modified Keys:** ``img``. **Added Keys:** ``auto_augmented``
    (bool, whether the AutoAugment branch was taken), plus what the branch's transforms add
    (e.g. ``flip``).

    Args:
        prob (float | Sequence[float]): A number is the probability ``p`` of the AutoAugment
            branch, in ``[0, 1]``; a pair is ``(p_auto_augment, p_standard)`` and must sum to 1.
            Defaults to 0.5.
        auto_augment_transforms (list[dict | callable], optional): The AutoAugment branch.
            Defaults to :func:`auto_augment_view_transforms` (flip + ``AutoAugment('imagenet')``).
        standard_transforms (list[dict | callable], optional): The other branch. Defaults to
            :func:`moco_v2_view_transforms`.
    """

    def __init__(self,
                 prob: Union[float, Sequence[float]] = 0.5,
                 auto_augment_transforms: Optional[List] = None,
                 standard_transforms: Optional[List] = None) -> None:
        super().__init__()
        self.prob = self.auto_augment_prob(prob)
        if auto_augment_transforms is None:
            auto_augment_transforms = auto_augment_view_transforms()
        if standard_transforms is None:
            standard_transforms = moco_v2_view_transforms()
        self.auto_augment = build_view_pipeline(auto_augment_transforms)
        self.standard = build_view_pipeline(standard_transforms)

    @staticmethod
    def auto_augment_prob(prob: Union[float, Sequence[float]]) -> float:
        """Validate ``prob`` and return the AutoAugment branch's probability."""
        if isinstance(prob, numbers.Number):
            probs = (float(prob), 1. - float(prob))
        elif isinstance(prob, Sequence) and len(prob) == 2 and all(
                isinstance(p, numbers.Number) for p in prob):
            probs = (float(prob[0]), float(prob[1]))
            if not math.isclose(sum(probs), 1., abs_tol=1e-6):
                raise ValueError(
                    'RandomChoiceAutoAugment: prob=(p_auto_augment, p_standard) must sum to 1, '
                    f'got {tuple(prob)} (sum {sum(probs)}). Give a single number p for the '
                    'AutoAugment branch instead, e.g. prob=0.5.')
        else:
            raise TypeError(
                'RandomChoiceAutoAugment: prob must be a number in [0, 1] or a pair '
                f'(p_auto_augment, p_standard) summing to 1, got {prob!r}.')
        if not all(0. <= p <= 1. for p in probs):
            raise ValueError(
                'RandomChoiceAutoAugment: probabilities must lie in [0, 1], got '
                f'prob={prob!r}.')
        return probs[0]

    @cache_randomness
    def choose_auto_augment(self) -> bool:
        """Draw whether this view takes the AutoAugment branch."""
        return bool(np.random.rand() < self.prob)

    def transform(self, results: Dict) -> Dict:
        """Apply one of the two branches to ``results['img']``.

        Args:
            results (dict): Result dict of one view.

        Returns:
            dict: The augmented result dict, with ``auto_augmented`` set.
        """
        use_auto_augment = self.choose_auto_augment()
        results = (self.auto_augment if use_auto_augment else self.standard)(results)
        results['auto_augmented'] = use_auto_augment
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'auto_augment={self.auto_augment}, standard={self.standard})')
