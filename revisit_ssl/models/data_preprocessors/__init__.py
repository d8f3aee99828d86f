from .batched_view_ops import (BatchedAutoAugment, BatchedColorJitter, BatchedGaussianBlur,
                               BatchedRandomFlip, BatchedRandomGrayscale, apply_batched_ops,
                               build_batched_view_ops)
from .device_view_augment_preprocessor import DeviceViewAugmentPreprocessor

__all__ = [
    'DeviceViewAugmentPreprocessor', 'BatchedColorJitter', 'BatchedRandomGrayscale',
    'BatchedGaussianBlur', 'BatchedRandomFlip', 'BatchedAutoAugment', 'build_batched_view_ops',
    'apply_batched_ops'
]
