"""MoCo-v2's per-view augmentations on uint8 BGR arrays, with torchvision-on-PIL results.

The transforms of the release's view pipeline (torchvision ``ColorJitter``, ``RandomGrayscale``,
PIL ``GaussianBlur``, ``RandomHorizontalFlip``), computed by :mod:`.pil_equivalent_ops` on the
arrays the crop produces: no PIL images, no float work, random parameters from numpy's global
random state (which mmengine seeds per worker). Config names: ``FastColorJitter``,
``FastRandomGrayscale``, ``FastGaussianBlur``, ``FastRandomFlip``.

Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_ (MoCo-v2 augmentations on every view).
"""
import numbers
from typing import Dict, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from . import pil_equivalent_ops as ops

__all__ = ['FastColorJitter', 'FastRandomGrayscale', 'FastGaussianBlur', 'FastRandomFlip',
           'check_uint8_bgr']


def check_uint8_bgr(img: np.ndarray, name: str) -> None:
    """Raise a clear error unless ``img`` is an ``(H, W, 3)`` uint8 array."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or \
            img.shape[2] != 3:
        raise TypeError(
            f'{name} works on (H, W, 3) uint8 BGR arrays (as mmcv loads images), got '
            f'{type(img).__name__} {getattr(img, "dtype", "")} with shape '
            f'{getattr(img, "shape", None)}. Put it after ConstrainedMultiCrop inside '
            'MultiCropViewAugment, which makes grey views 3-channel.')


def _factor_range(value: Union[float, Sequence[float]], name: str, center: float,
                  bound: Tuple[float, float]) -> Tuple[float, float]:
    """torchvision's ``ColorJitter._check_input``: a number ``v`` means ``[c - v, c + v]``."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f'{name} must be non-negative, got {value}.')
        value = (center - float(value), center + float(value))
        if name != 'hue':
            value = (max(value[0], 0.), value[1])
    elif not (isinstance(value, Sequence) and len(value) == 2):
        raise TypeError(f'{name} must be a number or a (min, max) pair, got {value!r}.')
    low, high = float(value[0]), float(value[1])
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f'{name} range must satisfy {bound[0]} <= min <= max <= {bound[1]}, '
                         f'got {(low, high)}.')
    return low, high


@TRANSFORMS.register_module()
class FastColorJitter(BaseTransform):
    """torchvision's ``ColorJitter`` on uint8 BGR arrays.

    Brightness, contrast, saturation and hue factors are drawn uniformly from their ranges and
    applied in a random order, as torchvision does; each step is the PIL operation torchvision
    applies to PIL images (:mod:`.pil_equivalent_ops`). MoCo-v2's jitter is
    ``FastColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)`` inside a
    ``RandomApply`` with ``prob=0.8``. Hue shifts of either sign work (no numpy 2 overflow).

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        brightness (float | Sequence[float]): ``b`` gives factors in ``[max(0, 1 - b), 1 + b]``;
            or a ``(min, max)`` pair. Defaults to 0.
        contrast (float | Sequence[float]): As ``brightness``. Defaults to 0.
        saturation (float | Sequence[float]): As ``brightness``. Defaults to 0.
        hue (float | Sequence[float]): ``h`` gives shifts in ``[-h, h]`` turns,
            ``0 <= h <= 0.5``; or a pair inside ``[-0.5, 0.5]``. Defaults to 0.
    """

    def __init__(self,
                 brightness: Union[float, Sequence[float]] = 0.,
                 contrast: Union[float, Sequence[float]] = 0.,
                 saturation: Union[float, Sequence[float]] = 0.,
                 hue: Union[float, Sequence[float]] = 0.) -> None:
        super().__init__()
        inf = float('inf')
        self.brightness = _factor_range(brightness, 'brightness', 1., (0., inf))
        self.contrast = _factor_range(contrast, 'contrast', 1., (0., inf))
        self.saturation = _factor_range(saturation, 'saturation', 1., (0., inf))
        self.hue = _factor_range(hue, 'hue', 0., (-0.5, 0.5))
        self._steps = (
            (ops.adjust_brightness, self.brightness, 1.),
            (ops.adjust_contrast, self.contrast, 1.),
            (ops.adjust_saturation, self.saturation, 1.),
            (ops.adjust_hue, self.hue, 0.),
        )

    def transform(self, results: Dict) -> Dict:
        """Jitter ``results['img']``.

        Args:
            results (dict): Result dict with an ``(H, W, 3)`` uint8 ``img``.

        Returns:
            dict: ``results`` with the jittered ``img``.
        """
        img = results['img']
        check_uint8_bgr(img, 'FastColorJitter')
        # torchvision: a random order of the four steps, then one factor per step.
        order = np.random.permutation(4)
        factors = [np.random.uniform(low, high) for _, (low, high), _ in self._steps]
        for index in order:
            function, _, identity = self._steps[index]
            if factors[index] != identity:
                img = function(img, float(factors[index]))
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, '
                f'contrast={self.contrast}, saturation={self.saturation}, hue={self.hue})')


@TRANSFORMS.register_module()
class FastRandomGrayscale(BaseTransform):
    """torchvision's ``RandomGrayscale``: with probability ``prob``, PIL's 'L' in 3 channels.

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        prob (float): Probability of the grey conversion. Defaults to 0.2 (MoCo-v2).
    """

    def __init__(self, prob: float = 0.2) -> None:
        super().__init__()
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        self.prob = float(prob)

    def transform(self, results: Dict) -> Dict:
        """Make ``results['img']`` grey with probability ``prob``."""
        check_uint8_bgr(results['img'], 'FastRandomGrayscale')
        if np.random.rand() < self.prob:
            results['img'] = ops.to_grayscale(results['img'])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class FastGaussianBlur(BaseTransform):
    """MoCo-v2's blur: with probability ``prob``, PIL's ``GaussianBlur`` of a uniform sigma.

    The release draws ``sigma ~ U(sigma_min, sigma_max)`` (pixels) and applies PIL's
    ``ImageFilter.GaussianBlur(radius=sigma)``; :func:`.pil_equivalent_ops.gaussian_blur`
    computes the same filter. MoCo-v2's ``(0.1, 2.0)`` is meant for 224-px crops; scale it
    with the crop size for much smaller crops (the demo's 32 px: ``(0.014, 0.29)``).

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        sigma (Sequence[float]): ``(min, max)`` standard deviation in pixels,
            ``0 < min <= max``. Defaults to (0.1, 2.0).
        prob (float): Probability of blurring. Defaults to 0.5 (MoCo-v2).
    """

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0), prob: float = 0.5) -> None:
        super().__init__()
        try:
            low, high = (float(v) for v in sigma)
        except (TypeError, ValueError):
            raise ValueError(f'sigma must be two numbers (min, max), got {sigma!r}') from None
        if not 0 < low <= high:
            raise ValueError(f'sigma={tuple(sigma)} needs 0 < min <= max (MoCo-v2 uses '
                             '(0.1, 2.0) at 224 px; scale it with the crop size)')
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        self.sigma = (low, high)
        self.prob = float(prob)

    def transform(self, results: Dict) -> Dict:
        """Blur ``results['img']`` with probability ``prob``."""
        check_uint8_bgr(results['img'], 'FastGaussianBlur')
        if np.random.rand() < self.prob:
            sigma = np.random.uniform(*self.sigma)
            results['img'] = ops.gaussian_blur(results['img'], float(sigma))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(sigma={self.sigma}, prob={self.prob})'


@TRANSFORMS.register_module()
class FastRandomFlip(BaseTransform):
    """Horizontal flip with probability ``prob`` (torchvision's ``RandomHorizontalFlip``).

    Sets ``flip`` and ``flip_direction`` as mmcv's ``RandomFlip`` does.

    **Required Keys:** ``img``. **Modified Keys:** ``img``. **Added Keys:** ``flip``,
    ``flip_direction``.

    Args:
        prob (float): Probability of the flip. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        super().__init__()
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        self.prob = float(prob)

    def transform(self, results: Dict) -> Dict:
        """Flip ``results['img']`` left-right with probability ``prob``."""
        flip = bool(np.random.rand() < self.prob)
        if flip:
            results['img'] = ops.hflip(results['img'])
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
