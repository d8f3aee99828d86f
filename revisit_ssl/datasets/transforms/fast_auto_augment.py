"""torchvision's AutoAugment (ImageNet policy) on uint8 BGR arrays: the A+ branch, fast."""
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS
from torchvision.transforms import AutoAugmentPolicy
from torchvision.transforms import AutoAugment as TorchvisionAutoAugment

from . import pil_equivalent_ops as ops
from .fast_view_transforms import check_uint8_bgr

__all__ = ['FastAutoAugment', 'AUTO_AUGMENT_OPS']

_NUM_BINS = 10

#: Operation name -> (function(img, magnitude), magnitudes of the 10 bins or None, signed),
#: torchvision's ``AutoAugment._augmentation_space`` for the operations the ImageNet policy uses
#: (torch's float32 ``linspace`` values, so magnitudes are torchvision's to the last bit).
AUTO_AUGMENT_OPS: Dict[str, Tuple[Callable, Optional[list], bool]] = {
    'ShearX': (ops.shear_x, torch.linspace(0.0, 0.3, _NUM_BINS).tolist(), True),
    'Rotate': (ops.rotate, torch.linspace(0.0, 30.0, _NUM_BINS).tolist(), True),
    'Color': (lambda img, m: ops.adjust_saturation(img, 1.0 + m),
              torch.linspace(0.0, 0.9, _NUM_BINS).tolist(), True),
    'Contrast': (lambda img, m: ops.adjust_contrast(img, 1.0 + m),
                 torch.linspace(0.0, 0.9, _NUM_BINS).tolist(), True),
    'Sharpness': (lambda img, m: ops.adjust_sharpness(img, 1.0 + m),
                  torch.linspace(0.0, 0.9, _NUM_BINS).tolist(), True),
    'Posterize': (lambda img, m: ops.posterize(img, int(m)),
                  (8 - (torch.arange(_NUM_BINS) / ((_NUM_BINS - 1) / 4)).round().int()).tolist(),
                  False),
    'Solarize': (ops.solarize, torch.linspace(255.0, 0.0, _NUM_BINS).tolist(), False),
    'AutoContrast': (lambda img, m: ops.autocontrast(img), None, False),
    'Equalize': (lambda img, m: ops.equalize(img), None, False),
    'Invert': (lambda img, m: ops.invert(img), None, False),
}


@TRANSFORMS.register_module()
class FastAutoAugment(BaseTransform):
    """torchvision's ``AutoAugment(AutoAugmentPolicy.IMAGENET)`` on uint8 BGR arrays.

    The policy table and the magnitude bins are torchvision's (the official kNN-MoCo code uses
    ``transforms.AutoAugment()``); each operation is the PIL operation torchvision applies to
    PIL images, computed by :mod:`.pil_equivalent_ops` (nearest-neighbour rotate and shear
    with black fill). Per call: one of the 25 sub-policies uniformly, each of its two
    operations with its probability, signed magnitudes negated with probability 1/2, all drawn
    from numpy's global random state (torchvision draws the same from torch's).

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        policy (str): Only ``'imagenet'`` (the paper's A+). Defaults to ``'imagenet'``.
    """

    def __init__(self, policy: str = 'imagenet') -> None:
        super().__init__()
        if policy != 'imagenet':
            raise ValueError(f"FastAutoAugment supports policy='imagenet' (A+), got {policy!r}.")
        self.policy = policy
        self.policies: List[Tuple] = TorchvisionAutoAugment(AutoAugmentPolicy.IMAGENET).policies
        unknown = {op for sub in self.policies for op, _, _ in sub} - set(AUTO_AUGMENT_OPS)
        if unknown:  # a torchvision release with other operations in the policy
            raise NotImplementedError(f'FastAutoAugment lacks the operations {sorted(unknown)}.')

    @staticmethod
    def magnitude(op_name: str, magnitude_id) -> float:
        """The unsigned magnitude of ``op_name`` at bin ``magnitude_id``, as torchvision."""
        magnitudes = AUTO_AUGMENT_OPS[op_name][1]
        return float(magnitudes[magnitude_id]) if magnitude_id is not None else 0.0

    def transform(self, results: Dict) -> Dict:
        """Apply one random sub-policy to ``results['img']``.

        Args:
            results (dict): Result dict with an ``(H, W, 3)`` uint8 ``img``.

        Returns:
            dict: ``results`` with the augmented ``img``.
        """
        img = results['img']
        check_uint8_bgr(img, 'FastAutoAugment')
        sub_policy = self.policies[np.random.randint(len(self.policies))]
        probs = np.random.rand(2)
        signs = np.random.randint(2, size=2)
        for i, (op_name, prob, magnitude_id) in enumerate(sub_policy):
            if probs[i] <= prob:
                function, _, signed = AUTO_AUGMENT_OPS[op_name]
                magnitude = self.magnitude(op_name, magnitude_id)
                if signed and signs[i] == 0:
                    magnitude = -magnitude
                img = function(img, magnitude)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(policy={self.policy!r})'
