"""Colour jitter whose hue step works under numpy 2.

mmcv 2.1.0's ``mmcv.adjust_hue`` shifts the hue channel with ``h += np.uint8(hue_factor * 255)``.
numpy 1.x silently wrapped a negative ``hue_factor * 255`` into ``[0, 255]``; numpy 2 raises
``OverflowError: Python integer -25 out of bounds for uint8`` instead. mmpretrain's
``ColorJitter(hue=0.1)`` draws ``hue_factor`` uniformly from ``[-0.1, 0.1]``, so about half of
its hue steps crash the dataloader worker on this stack (numpy 2.x, which the rest of the
environment needs). torchvision fixed the same line with ``np.int32(...).astype(np.uint8)``.

:func:`adjust_hue` is mmcv's function with the shift taken modulo 256 explicitly, which is what
the uint8 overflow did under numpy 1, so results are bit-identical to the old stack.
:class:`HueSafeColorJitter` is mmpretrain's ``ColorJitter`` with that hue step; use it wherever a
config would say ``ColorJitter`` with a non-zero ``hue``.
"""
from typing import Dict, Optional

import cv2
import mmcv
import numpy as np
from mmpretrain.datasets.transforms import ColorJitter
from mmpretrain.registry import TRANSFORMS
from PIL import Image

__all__ = ['adjust_hue', 'HueSafeColorJitter']


def _hue_shift_levels(hue_factor: float) -> int:
    """Hue shift in the 256 levels of an 8-bit hue channel, in ``[0, 255]``.

    ``int()`` truncates toward zero like the C cast behind numpy 1's ``np.uint8(float)``, and
    ``% 256`` is the wrap-around that the uint8 overflow used to do.
    """
    return int(hue_factor * 255) % 256


def adjust_hue(img: np.ndarray,
               hue_factor: float,
               backend: Optional[str] = None) -> np.ndarray:
    """Rotate the hue of a BGR image (numpy-2-safe ``mmcv.adjust_hue``).

    The image is converted to HSV with 256 hue levels per turn (Pillow's ``HSV`` mode or
    OpenCV's ``COLOR_BGR2HSV_FULL``), the hue channel is shifted cyclically by
    ``int(hue_factor * 255)`` levels and the image is converted back, exactly as in mmcv and
    torchvision.

    Args:
        img (np.ndarray): ``(H, W, 3)`` BGR image. Grey images (``(H, W)`` or ``(H, W, 1)``) have
            no hue and are returned unchanged, as torchvision does for ``L`` images.
        hue_factor (float): Shift in turns of the hue circle, in ``[-0.5, 0.5]``; both ends
            give the complementary colours, 0 gives the original image.
        backend (str, optional): ``'cv2'`` or ``'pillow'``. Defaults to mmcv's global
            ``imread_backend`` (as ``mmcv.adjust_hue`` does).

    Returns:
        np.ndarray: The hue-rotated image, with ``img``'s dtype.
    """
    if backend is None:
        backend = mmcv.image.io.imread_backend
    if backend not in ('cv2', 'pillow'):
        raise ValueError(
            f"backend must be 'cv2' or 'pillow' for adjust_hue, got {backend!r}.")
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor must be in [-0.5, 0.5], got {hue_factor}.')
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise TypeError('adjust_hue expects an (H, W) or (H, W, C) numpy array, got '
                        f'{type(img).__name__} with shape {getattr(img, "shape", None)}.')
    if img.ndim == 2 or img.shape[2] == 1:
        return img
    if img.shape[2] != 3:
        raise ValueError(
            f'adjust_hue needs a 3-channel BGR image, got {img.shape[2]} channels.')

    shift = np.uint8(_hue_shift_levels(hue_factor))
    dtype = img.dtype
    if backend == 'pillow':
        hsv = Image.fromarray(
            np.ascontiguousarray(img[..., ::-1].astype(np.uint8))).convert('HSV')
        hsv = np.array(hsv)
        # uint8 addition wraps around 256, which is the cyclic rotation we want.
        hsv[..., 0] += shift
        rgb = Image.fromarray(hsv, 'HSV').convert('RGB')
        return np.array(rgb)[..., ::-1].astype(dtype)
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    hsv[..., 0] += shift
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL).astype(dtype)


@TRANSFORMS.register_module()
class HueSafeColorJitter(ColorJitter):
    """mmpretrain's ``ColorJitter`` with a hue step that works under numpy 2.

    Same arguments, random draws and order of operations as
    :class:`mmpretrain.datasets.transforms.ColorJitter`; only the hue step calls
    :func:`adjust_hue` instead of ``mmcv.adjust_hue`` (which raises ``OverflowError`` for
    negative hue shifts under numpy 2). The MoCo-v2 jitter is
    ``HueSafeColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)``.

    **Required Keys:** ``img``. **Modified Keys:** ``img``.

    Args:
        brightness (float | Sequence[float]): See ``ColorJitter``. Defaults to 0.
        contrast (float | Sequence[float]): See ``ColorJitter``. Defaults to 0.
        saturation (float | Sequence[float]): See ``ColorJitter``. Defaults to 0.
        hue (float | Sequence[float]): Hue shift range in turns, ``[-hue, hue]`` for a number
            (``0 <= hue <= 0.5``). Defaults to 0.
        backend (str): ``'pillow'`` (as mmpretrain's MoCo-v2 configs) or ``'cv2'``.
            Defaults to ``'pillow'``.
    """

    def transform(self, results: Dict) -> Dict:
        """Jitter brightness, contrast, saturation and hue in a random order.

        Args:
            results (dict): Result dict with ``img``.

        Returns:
            dict: ``results`` with the jittered ``img``.
        """
        img = results['img']
        trans_inds, brightness, contrast, saturation, hue = self._rand_params()
        for index in trans_inds:
            if index == 0 and brightness is not None:
                img = mmcv.adjust_brightness(img, brightness, backend=self.backend)
            elif index == 1 and contrast is not None:
                img = mmcv.adjust_contrast(img, contrast, backend=self.backend)
            elif index == 2 and saturation is not None:
                img = mmcv.adjust_color(img, alpha=saturation, backend=self.backend)
            elif index == 3 and hue is not None:
                img = adjust_hue(img, hue, backend=self.backend)
        results['img'] = img
        return results
