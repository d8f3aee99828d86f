"""Constrained multi-crop (CC): the views of kNN-MoCo, cut from one image."""
import inspect
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

__all__ = ['ConstrainedMultiCrop', 'OVERLAP_PRESETS']

#: Candidates of an unconstrained crop before the central-crop fallback, as
#: ``RandomResizedCrop``'s ``max_attempts``.
RRC_MAX_ATTEMPTS = 10

#: Named settings of the overlap rule: ``(min_overlap, overlap_area, max_tries)``.
#: ``'paper'`` is the rule as the paper states it (Sec. 4: 20% of each small crop inside the
#: key) and the defaults; ``'release'`` is the rule the official code computes
#: (``utils/constrained_cropping.py``: intersection >= 10% of the small crop's target area,
#: 10 tries, then an unconstrained crop), which produced the paper's numbers.
OVERLAP_PRESETS = {
    'paper': (0.2, 'crop', 50),
    'release': (0.1, 'target', 10),
}


def _as_hw(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """``size`` as ``(height, width)``; an int means a square."""
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f'{name} must be a positive int or a (height, width) pair of '
                         f'positive ints, got {size!r}.')
    return int(size[0]), int(size[1])


def _box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of paired ``(..., 4)`` integer boxes ``(x1, y1, x2, y2)``, ``x2``/``y2`` exclusive."""
    inter_w = np.minimum(boxes1[..., 2], boxes2[..., 2]) - np.maximum(boxes1[..., 0],
                                                                      boxes2[..., 0])
    inter_h = np.minimum(boxes1[..., 3], boxes2[..., 3]) - np.maximum(boxes1[..., 1],
                                                                      boxes2[..., 1])
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    return inter / (area1 + area2 - inter).astype(np.float64)


def _check_range(value: Sequence[float], name: str, low: float,
                 high: float) -> Tuple[float, float]:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f'{name} must be (min, max) with {low} <= min <= max <= {high}, '
                         f'got {value!r}.')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class ConstrainedMultiCrop(BaseTransform):
    """Cut the query, key and small views of kNN-MoCo from one image.

    Makes ``num_large`` crops (``RandomResizedCrop`` semantics: area ``large_scale`` of the
    image, aspect ratio log-uniform in ``aspect_ratio_range``, resized to ``large_size``) and
    ``num_small`` crops (area ``small_scale``, resized to ``small_size``). The output order is
    ``[query, key, small_1, ..., small_n]``: view 0 is the query and view 1 the key, as
    kNN-MoCo expects (and as in the paper's code, where the key is the last large crop).

    With ``constrained=True`` (the paper's constrained cropping, CC) each small crop is drawn
    again until at least ``min_overlap`` of its area lies inside the key crop, at most
    ``max_tries`` candidates; if none passes, the crop falls back to an unconstrained one and
    the fallback is counted. ``constrained=False`` gives plain multi-crop (MC); it draws the same
    random numbers as CC, so with one seed both give the same query and key. With
    ``num_small=0`` and ``num_large=2`` it is MoCo-v2's two-crop.

    Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
    <https://arxiv.org/abs/2106.05967>`_ (Sec. 4: at least 20% of each small crop overlaps the
    key). The official code, which produced the paper's numbers, instead asks for 10% of the
    small crop's *target* area (the area drawn before rounding its sides), with 10 tries:
    ``overlap_preset='release'`` (``min_overlap=0.1, overlap_area='target', max_tries=10``)
    reproduces that, ``overlap_preset='paper'`` is the default rule.

    With ``max_iou`` (Sec. 3.1, Fig. 3: "forcing the IoU between views to be smaller than a
    predefined threshold") the query and the key are drawn again, as a pair, until their IoU
    is at most ``max_iou``, at most ``max_tries`` pairs; if none passes, the first pair (an
    unconstrained draw) is kept and the fallback is counted. The small crops are then drawn
    against the chosen key. ``max_iou=None`` draws exactly the random numbers it did before the
    option existed, so configs without it are unchanged; with a value, the first candidate pair
    is the pair ``max_iou=None`` would give.

    The box sampler (:meth:`sample_boxes`) needs only the image size, so analyses and tests
    can draw boxes without decoding images.

    Like ``RandomResizedCrop``, images smaller than an output size are upsampled, images whose
    aspect ratio no crop fits get a central crop of the nearest allowed aspect ratio, and grey
    ``(H, W)`` images stay grey. Nothing raises for odd image sizes.

    **Required Keys:** ``img``.

    **Modified Keys:** ``img``: now a list of views (arrays), in view order. ``img_shape`` and
    ``ori_shape`` keep the original image's size (as mmpretrain's ``MultiView`` leaves them).

    **Added Keys:**

    - ``crop_boxes`` (np.ndarray): ``(num_views, 4)`` int64 boxes ``(x1, y1, x2, y2)`` in
      original-image pixels, ``x2``/``y2`` exclusive, one row per view in view order.
    - ``num_crop_fallbacks`` (int): How many crops were drawn unconstrained after ``max_tries``
      failed candidates: small crops that failed the overlap rule (always 0 for MC), plus 1
      when the query/key pair failed ``max_iou`` (always 0 without ``max_iou``).

    Neither reaches the model: ``PackInputs`` packs only ``img`` as inputs. To keep them in
    each data sample's metainfo (for analyses), list them in ``PackInputs``' ``meta_keys``.

    Args:
        num_large (int): Number of large crops (query, key, ...). Must be at least 2 when there
            are small crops, since view 1 is the key. Defaults to 2.
        large_size (int | tuple[int, int]): Output size of large crops, ``(h, w)`` for a
            pair. Defaults to 160.
        large_scale (tuple[float, float]): Range of the large crops' area as a fraction of
            the image area. Defaults to (0.2, 1.0).
        num_small (int): Number of small crops. Defaults to 4.
        small_size (int | tuple[int, int]): Output size of small crops. Defaults to 96.
        small_scale (tuple[float, float]): Range of the small crops' area fraction.
            Defaults to (0.05, 0.14).
        aspect_ratio_range (tuple[float, float]): Range of crop aspect ratios (w / h), drawn
            log-uniformly. Defaults to (3/4, 4/3).
        constrained (bool): Constrain small crops to overlap the key (CC); False gives plain
            multi-crop (MC). Defaults to True.
        min_overlap (float): Fraction of a small crop's area that must lie inside the key
            crop, in ``[0, 1]``. Defaults to 0.2 (the paper).
        overlap_area (str): What ``min_overlap`` is a fraction of: ``'crop'`` (the small crop's
            pixel area, the paper's wording) or ``'target'`` (the area drawn before rounding,
            as the official code). Defaults to ``'crop'``.
        max_tries (int): Candidates per small crop (and query/key pairs under ``max_iou``)
            before the unconstrained fallback. A candidate that does not fit in the image
            counts as a try. Defaults to 50; they are drawn in one vectorised batch, so tries
            cost next to nothing.
        overlap_preset (str, optional): A named overlap rule that sets ``min_overlap``,
            ``overlap_area`` and ``max_tries`` together (:data:`OVERLAP_PRESETS`):
            ``'paper'`` (0.2, ``'crop'``, 50, the defaults) or ``'release'`` (0.1,
            ``'target'``, 10, the official code). Those arguments left at their defaults take
            the preset's values; one set to a third value is an error. Defaults to None (the
            three arguments as given).
        max_iou (float, optional): Largest IoU allowed between the query (view 0) and the key
            (view 1), in ``[0, 1)``; needs ``num_large >= 2``. Defaults to None (no limit).
        interpolation (str): Resize interpolation, as ``RandomResizedCrop``. Defaults to
            ``'bilinear'``.
        backend (str): Resize backend: ``'pillow'`` (antialiased, as torchvision on PIL images
            and mmpretrain's MoCo-v2 config), ``'torch'`` (torch's antialiased uint8 resize,
            the kernel torchvision.transforms.v2 uses: Pillow's filter, results within a grey
            level of ``'pillow'``, several times faster; ``'bilinear'`` / ``'bicubic'`` only)
            or ``'cv2'`` (no antialiasing when shrinking). Defaults to ``'pillow'``; the
            configs use ``'torch'``.
    """

    #: Index of the key view in the output (the query is view 0).
    KEY_INDEX = 1

    def __init__(self,
                 num_large: int = 2,
                 large_size: Union[int, Sequence[int]] = 160,
                 large_scale: Tuple[float, float] = (0.2, 1.0),
                 num_small: int = 4,
                 small_size: Union[int, Sequence[int]] = 96,
                 small_scale: Tuple[float, float] = (0.05, 0.14),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 constrained: bool = True,
                 min_overlap: float = 0.2,
                 overlap_area: str = 'crop',
                 max_tries: int = 50,
                 interpolation: str = 'bilinear',
                 backend: str = 'pillow',
                 overlap_preset: Optional[str] = None,
                 max_iou: Optional[float] = None) -> None:
        super().__init__()
        if overlap_preset is not None:
            min_overlap, overlap_area, max_tries = self._apply_preset(
                overlap_preset, min_overlap=min_overlap, overlap_area=overlap_area,
                max_tries=max_tries)
        if not isinstance(num_large, int) or num_large < 1:
            raise ValueError(f'num_large must be an int >= 1, got {num_large!r}.')
        if not isinstance(num_small, int) or num_small < 0:
            raise ValueError(f'num_small must be an int >= 0, got {num_small!r}.')
        if num_small > 0 and num_large <= self.KEY_INDEX:
            raise ValueError(
                f'The key is view {self.KEY_INDEX} (after the query), so small crops need '
                f'num_large >= {self.KEY_INDEX + 1}; got num_large={num_large}.')
        if not 0. < min_overlap <= 1.:
            # 0 would accept every crop: that is plain multi-crop, constrained=False
            raise ValueError(f'min_overlap is a fraction of the small crop, in (0, 1]; got '
                             f'{min_overlap}. For no constraint use constrained=False.')
        if overlap_area not in ('crop', 'target'):
            raise ValueError("overlap_area must be 'crop' (paper) or 'target' (official "
                             f"code), got {overlap_area!r}.")
        if not isinstance(max_tries, int) or max_tries < 1:
            raise ValueError(f'max_tries must be an int >= 1, got {max_tries!r}.')
        if max_iou is not None:
            if isinstance(max_iou, bool) or not isinstance(max_iou, (int, float)) \
                    or not 0. <= max_iou < 1.:
                raise ValueError(f'max_iou is the largest IoU allowed between query and key, '
                                 f'in [0, 1); got {max_iou!r}. For no limit use '
                                 'max_iou=None.')
            if num_large < 2:
                raise ValueError('max_iou limits the IoU between the query (view 0) and the '
                                 f'key (view 1), so it needs num_large >= 2; got '
                                 f'num_large={num_large}.')
        if backend not in ('cv2', 'pillow', 'torch'):
            raise ValueError(f"backend must be 'cv2', 'pillow' or 'torch', got {backend!r}.")
        if backend == 'torch' and interpolation not in ('bilinear', 'bicubic'):
            raise ValueError("backend='torch' resizes with antialiasing, which torch has for "
                             f"'bilinear' and 'bicubic' only, got interpolation="
                             f"{interpolation!r}; use backend='pillow' for it.")

        self.num_large = num_large
        self.large_size = _as_hw(large_size, 'large_size')
        self.large_scale = _check_range(large_scale, 'large_scale', 0., 1.)
        self.num_small = num_small
        self.small_size = _as_hw(small_size, 'small_size')
        self.small_scale = _check_range(small_scale, 'small_scale', 0., 1.)
        ratio = _check_range(aspect_ratio_range, 'aspect_ratio_range', 1e-6, 1e6)
        self.aspect_ratio_range = ratio
        self._log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.constrained = bool(constrained)
        self.min_overlap = float(min_overlap)
        self.overlap_area = overlap_area
        self.max_tries = max_tries
        self.overlap_preset = overlap_preset
        self.max_iou = None if max_iou is None else float(max_iou)
        self.interpolation = interpolation
        self.backend = backend

    @classmethod
    def _apply_preset(cls, name: str, **given) -> Tuple[float, str, int]:
        """``(min_overlap, overlap_area, max_tries)`` of preset ``name``.

        An argument still at its default takes the preset's value; one given at another value
        that is not the preset's would silently lose, so it is an error.
        """
        if name not in OVERLAP_PRESETS:
            raise ValueError(f'overlap_preset must be one of {sorted(OVERLAP_PRESETS)} (or '
                             f'None), got {name!r}.')
        defaults = inspect.signature(cls.__init__).parameters
        resolved = []
        for (key, value), preset_value in zip(given.items(), OVERLAP_PRESETS[name]):
            if value != defaults[key].default and value != preset_value:
                raise ValueError(
                    f'overlap_preset={name!r} sets {key}={preset_value!r}, but {key}='
                    f'{value!r} was given: drop {key} to use the preset, or drop '
                    'overlap_preset to set min_overlap, overlap_area and max_tries one by '
                    'one.')
            resolved.append(preset_value)
        return tuple(resolved)

    @property
    def num_views(self) -> int:
        return self.num_large + self.num_small

    # ---------------------------------------------------------------- box sampling
    def _candidates(self, uniform: np.ndarray, height: int, width: int,
                    scale: Tuple[float, float]):
        """RandomResizedCrop candidates from uniform draws, vectorised.

        Args:
            uniform (np.ndarray): ``(..., 4)`` draws in ``[0, 1)``: area, log aspect ratio,
                x offset and y offset of each candidate.
            height (int): Image height.
            width (int): Image width.
            scale (tuple[float, float]): Range of the area fraction.

        Returns:
            tuple: ``(boxes, fits, target_area)``: ``(..., 4)`` int64 boxes ``x1, y1, x2, y2``
            (meaningful where ``fits``), whether each candidate fits in the image, and the
            drawn (unrounded) areas.
        """
        target_area = (scale[0] + (scale[1] - scale[0]) * uniform[..., 0]) * (height * width)
        log_ratio = self._log_ratio[0] + (self._log_ratio[1] - self._log_ratio[0]) * uniform[..., 1]
        aspect = np.exp(log_ratio)
        # np.rint rounds half to even, like Python's round() in RandomResizedCrop.
        crop_w = np.rint(np.sqrt(target_area * aspect)).astype(np.int64)
        crop_h = np.rint(np.sqrt(target_area / aspect)).astype(np.int64)
        fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
        # Offsets uniform over the valid positions; clipped to 0 where the crop does not fit.
        x1 = (uniform[..., 2] * np.maximum(width - crop_w + 1, 1)).astype(np.int64)
        y1 = (uniform[..., 3] * np.maximum(height - crop_h + 1, 1)).astype(np.int64)
        boxes = np.stack([x1, y1, x1 + crop_w, y1 + crop_h], axis=-1)
        return boxes, fits, target_area

    def _central_box(self, height: int, width: int) -> np.ndarray:
        """RandomResizedCrop's fallback: the central crop of the nearest allowed ratio."""
        in_ratio = width / height
        if in_ratio < self.aspect_ratio_range[0]:
            crop_w, crop_h = width, int(round(width / self.aspect_ratio_range[0]))
        elif in_ratio > self.aspect_ratio_range[1]:
            crop_w, crop_h = int(round(height * self.aspect_ratio_range[1])), height
        else:
            crop_w, crop_h = width, height
        # Rounding can overshoot by a pixel for tiny images; keep the box inside.
        crop_w, crop_h = max(1, min(crop_w, width)), max(1, min(crop_h, height))
        x1, y1 = (width - crop_w) // 2, (height - crop_h) // 2
        return np.array([x1, y1, x1 + crop_w, y1 + crop_h], dtype=np.int64)

    def _random_boxes(self, uniform: np.ndarray, height: int, width: int,
                      scale: Tuple[float, float]) -> np.ndarray:
        """Unconstrained RandomResizedCrop boxes, one per row of ``uniform``.

        Each row holds ``RRC_MAX_ATTEMPTS`` candidates; the first that fits is taken, else the
        central-crop fallback (as ``RandomResizedCrop``).
        """
        boxes, fits, _ = self._candidates(uniform, height, width, scale)
        first = np.argmax(fits, axis=1)
        chosen = boxes[np.arange(len(boxes)), first]
        missing = ~fits.any(axis=1)
        if missing.any():
            chosen[missing] = self._central_box(height, width)
        return chosen

    def _overlap_ok(self, boxes: np.ndarray, target_area: np.ndarray,
                    key_box: np.ndarray) -> np.ndarray:
        """Whether ``min_overlap`` of each box's area lies inside ``key_box``."""
        inter_w = np.minimum(boxes[..., 2], key_box[2]) - np.maximum(boxes[..., 0], key_box[0])
        inter_h = np.minimum(boxes[..., 3], key_box[3]) - np.maximum(boxes[..., 1], key_box[1])
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        if self.overlap_area == 'crop':
            area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        else:
            area = target_area
        return inter >= self.min_overlap * area

    def sample_boxes(
            self,
            height: int,
            width: int,
            rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, int]:
        """Draw the crop boxes of all views for an image of the given size.

        All random numbers one image needs are drawn in one call and the candidates of all
        views are evaluated together: a fixed number of numpy calls per image, whatever
        ``max_tries`` is. With ``max_iou`` the extra query/key candidates come after all the
        numbers drawn without it, so the first candidate pair is the unconstrained draw.

        Args:
            height (int): Image height in pixels.
            width (int): Image width in pixels.
            rng (np.random.Generator, optional): Source of randomness. Defaults to numpy's
                global state (what mmengine seeds per worker, like mmpretrain's transforms).

        Returns:
            tuple[np.ndarray, int]: ``(num_views, 4)`` int64 boxes ``(x1, y1, x2, y2)``
            (``x2``/``y2`` exclusive) in view order, and the number of fallbacks (small crops
            that failed the overlap rule, plus 1 if the query/key pair failed ``max_iou``).
        """
        if height < 1 or width < 1:
            raise ValueError(f'Cannot crop an empty image of size {height}x{width}.')
        # Large crops, unconstrained small crops (MC, or CC's fallbacks), CC's candidates.
        # MC draws CC's candidates too (and ignores them): the random state after cropping is
        # then the same for both, so with one seed CC and MC get the same query, key and
        # later augmentations, and differ only in the small crops.
        # max_iou's extra query/key pairs go last, so the numbers before them are the same
        # with and without the option.
        num_pairs = 0 if self.max_iou is None else self.max_tries - 1
        sizes = (self.num_large * RRC_MAX_ATTEMPTS, self.num_small * RRC_MAX_ATTEMPTS,
                 self.num_small * self.max_tries, num_pairs * 2 * RRC_MAX_ATTEMPTS)
        draw = np.random.random if rng is None else rng.random
        uniform = draw((sum(sizes), 4))
        large_u, small_u, tries_u, pairs_u = np.split(uniform, np.cumsum(sizes)[:3])

        large = self._random_boxes(
            large_u.reshape(self.num_large, RRC_MAX_ATTEMPTS, 4), height, width,
            self.large_scale)
        num_fallbacks = 0
        if self.max_iou is not None:
            num_fallbacks += self._limit_iou(large, pairs_u, height, width)
        if self.num_small == 0:
            return large, num_fallbacks
        small = self._random_boxes(
            small_u.reshape(self.num_small, RRC_MAX_ATTEMPTS, 4), height, width,
            self.small_scale)
        if self.constrained:
            boxes, fits, target_area = self._candidates(
                tries_u.reshape(self.num_small, self.max_tries, 4), height, width,
                self.small_scale)
            ok = fits & self._overlap_ok(boxes, target_area, large[self.KEY_INDEX])
            found = ok.any(axis=1)
            first = np.argmax(ok, axis=1)
            # Crops with no passing candidate keep their unconstrained draw: the fallback.
            small[found] = boxes[np.arange(self.num_small), first][found]
            num_fallbacks += int(self.num_small - found.sum())
        return np.concatenate([large, small]), num_fallbacks

    def _limit_iou(self, large: np.ndarray, pairs_u: np.ndarray, height: int,
                   width: int) -> int:
        """Replace query and key (``large[:2]``, in place) by the first pair within max_iou.

        The candidates are the drawn pair followed by ``max_tries - 1`` pairs from
        ``pairs_u``; if none passes, the drawn pair stays.

        Returns:
            int: 1 if no pair passed (a fallback), else 0.
        """
        extra = self._random_boxes(
            pairs_u.reshape(-1, RRC_MAX_ATTEMPTS, 4), height, width,
            self.large_scale).reshape(-1, 2, 4)
        pairs = np.concatenate([large[None, :2], extra])
        ok = _box_iou(pairs[:, 0], pairs[:, 1]) <= self.max_iou
        if not ok.any():
            return 1
        large[:2] = pairs[np.argmax(ok)]
        return 0

    # ---------------------------------------------------------------- cropping
    def _crop_resize(self, img: np.ndarray, box: np.ndarray,
                     size: Tuple[int, int]) -> np.ndarray:
        x1, y1, x2, y2 = (int(v) for v in box)
        crop = img[y1:y2, x1:x2]
        if self.backend == 'torch':
            return self._torch_resize(crop, size)
        # Pillow cannot take (H, W, 1) arrays; resize those as (H, W) and restore the axis.
        single_channel = crop.ndim == 3 and crop.shape[2] == 1
        if single_channel:
            crop = crop[..., 0]
        out = mmcv.imresize(
            np.ascontiguousarray(crop), (size[1], size[0]),
            interpolation=self.interpolation,
            backend=self.backend)
        return out[..., None] if single_channel else out

    def _torch_resize(self, crop: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        """Antialiased resize of a uint8 ``(H, W[, C])`` crop with torch, as Pillow filters.

        An ``(H, W, C)`` array seen as ``(1, C, H, W)`` is channels-last, the layout of torch's
        vectorised uint8 antialiasing path; the result comes back as ``(h, w, C)`` uint8.
        """
        grey = crop.ndim == 2
        tensor = torch.from_numpy(np.ascontiguousarray(crop[..., None] if grey else crop))
        out = F.interpolate(tensor.permute(2, 0, 1)[None], size=size, mode=self.interpolation,
                            antialias=True, align_corners=False)
        out = np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())
        return out[..., 0] if grey else out

    def transform(self, results: Dict) -> Dict:
        """Replace ``results['img']`` by the list of cropped and resized views.

        Args:
            results (dict): Result dict with an ``img`` of shape ``(H, W)`` or ``(H, W, C)``.

        Returns:
            dict: ``results`` with ``img`` (list of views), ``crop_boxes`` and
            ``num_crop_fallbacks``.
        """
        img = results['img']
        height, width = img.shape[:2]
        boxes, num_fallbacks = self.sample_boxes(height, width)
        sizes = [self.large_size] * self.num_large + [self.small_size] * self.num_small
        results['img'] = [
            self._crop_resize(img, box, size) for box, size in zip(boxes, sizes)
        ]
        results['crop_boxes'] = boxes
        results['num_crop_fallbacks'] = num_fallbacks
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_large={self.num_large}, '
                f'large_size={self.large_size}, large_scale={self.large_scale}, '
                f'num_small={self.num_small}, small_size={self.small_size}, '
                f'small_scale={self.small_scale}, '
                f'aspect_ratio_range={self.aspect_ratio_range}, '
                f'constrained={self.constrained}, min_overlap={self.min_overlap}, '
                f'overlap_area={self.overlap_area!r}, max_tries={self.max_tries}, '
                f'overlap_preset={self.overlap_preset!r}, max_iou={self.max_iou}, '
                f'interpolation={self.interpolation!r}, backend={self.backend!r})')
