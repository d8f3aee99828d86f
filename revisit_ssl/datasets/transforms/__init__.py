from .constrained_multi_crop import OVERLAP_PRESETS, ConstrainedMultiCrop
from .fast_auto_augment import FastAutoAugment
from .fast_view_transforms import (FastColorJitter, FastGaussianBlur, FastRandomFlip,
                                   FastRandomGrayscale)
from .hue_safe_color_jitter import HueSafeColorJitter, adjust_hue
from .multi_crop_view_augment import MultiCropViewAugment
from .random_choice_auto_augment import RandomChoiceAutoAugment
from .strict_load_image import StrictLoadImageFromFile, UnreadableImageError
from .view_pipelines import (MOCO_V2_BLUR_SIGMA, auto_augment_view_transforms,
                             build_view_pipeline, check_blur_sigma,
                             fast_auto_augment_view_transforms, fast_moco_v2_view_transforms,
                             moco_v2_view_transforms)

__all__ = [
    'ConstrainedMultiCrop', 'OVERLAP_PRESETS', 'HueSafeColorJitter', 'adjust_hue', 'MultiCropViewAugment',
    'RandomChoiceAutoAugment', 'StrictLoadImageFromFile', 'UnreadableImageError',
    'MOCO_V2_BLUR_SIGMA', 'auto_augment_view_transforms', 'build_view_pipeline',
    'check_blur_sigma', 'moco_v2_view_transforms', 'fast_moco_v2_view_transforms',
    'fast_auto_augment_view_transforms', 'FastAutoAugment', 'FastColorJitter',
    'FastGaussianBlur', 'FastRandomFlip', 'FastRandomGrayscale'
]
