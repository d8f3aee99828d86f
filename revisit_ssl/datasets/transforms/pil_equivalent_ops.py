"""Photometric and AutoAugment operations on uint8 BGR arrays with torchvision-on-PIL results.

The official kNN-MoCo code augments PIL images with torchvision (``ColorJitter``,
``RandomGrayscale``, PIL's ``GaussianBlur``, ``RandomHorizontalFlip``, ``AutoAugment``). Each of
those converts between PIL and numpy or allocates PIL images several times per view. The
functions here compute the same results on the uint8 ``(H, W, 3)`` BGR arrays that
mmcv's loader and :class:`ConstrainedMultiCrop` produce, with OpenCV lookup tables, OpenCV
filters and a few numpy operations, in uint8, without leaving numpy:

- lookup-table operations are exact: brightness (PIL's blend with black, truncated), posterize,
  solarize, invert, autocontrast and equalize (PIL's histogram formulas);
- rotate and shear reproduce PIL's fixed-point nearest-neighbour sampling (exact);
- contrast, saturation, sharpness, grayscale, hue and blur follow PIL's formulas (its grey
  weights, its blend truncation, its 8-bit HSV, its 3-pass box blur with rounding after each
  pass) and differ from PIL by OpenCV's rounding only, at most a level here and there.

``tests/test_fast_pil_equivalence.py`` checks every function against torchvision on PIL images
(mean absolute difference <= 1 grey level, maximum <= 3).

Paper: `Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_.
"""
import math
from functools import lru_cache
from typing import Tuple

import cv2
import numpy as np

__all__ = [
    'adjust_brightness', 'adjust_contrast', 'adjust_saturation', 'adjust_hue', 'to_grayscale',
    'gaussian_blur', 'hflip', 'posterize', 'solarize', 'invert', 'autocontrast', 'equalize',
    'adjust_sharpness', 'rotate', 'shear_x', 'pil_box_kernel'
]

_LEVELS = np.arange(256, dtype=np.float32)
# PIL's 'L' conversion: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16, here per BGR channel.
_PIL_GREY_BGR = np.array([7471, 38470, 19595], np.float64) / 65536.
# The ``-0.5`` offsets turn OpenCV's round-to-nearest into PIL's truncation of non-negative
# values; the small epsilon keeps exact integers (e.g. grey pixels in a saturation blend,
# where the result equals the input) from being rounded half-to-even down by one.
_TRUNCATE = -0.5 + 1e-3


def _lut(img: np.ndarray, table: np.ndarray) -> np.ndarray:
    return cv2.LUT(img, np.clip(table, 0, 255).astype(np.uint8))


def _blend_table(degenerate: float, factor: float) -> np.ndarray:
    """PIL ``Image.blend(degenerate, img, factor)`` for a constant degenerate, as a table.

    PIL computes ``degenerate + factor * (img - degenerate)`` in float32 and truncates, clipping
    to ``[0, 255]`` when extrapolating.
    """
    value = np.float32(degenerate) + np.float32(factor) * (_LEVELS - np.float32(degenerate))
    return np.trunc(np.clip(value, 0, 255))


def _blend_image(img: np.ndarray, degenerate: np.ndarray, factor: float) -> np.ndarray:
    """PIL ``Image.blend(degenerate, img, factor)`` for a per-pixel degenerate image."""
    return cv2.addWeighted(img, float(factor), degenerate, 1. - float(factor), _TRUNCATE)


def _grey(img: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 luma with PIL's 'L' weights (OpenCV's are the same to 4 digits)."""
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Brightness(img).enhance(factor)`` (torchvision's PIL path). Exact.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        factor (float): 0 gives black, 1 the original image.

    Returns:
        np.ndarray: The adjusted image.
    """
    return _lut(img, _blend_table(0., factor))


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Contrast(img).enhance(factor)``: blend with the mean grey level.

    PIL's degenerate image is the rounded mean of the 'L' image; the mean of a linear grey is
    taken here from the channel means (it can differ from PIL's by one level, rarely).

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        factor (float): 0 gives a uniform grey, 1 the original image.

    Returns:
        np.ndarray: The adjusted image.
    """
    means = np.array(cv2.mean(img)[:3])
    mean = int(float(means @ _PIL_GREY_BGR) + 0.5)
    return _lut(img, _blend_table(mean, factor))


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Color(img).enhance(factor)``: blend with the grey image.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        factor (float): 0 gives the grey image, 1 the original image.

    Returns:
        np.ndarray: The adjusted image.
    """
    grey = cv2.cvtColor(_grey(img), cv2.COLOR_GRAY2BGR)
    return _blend_image(img, grey, factor)


def to_grayscale(img: np.ndarray) -> np.ndarray:
    """torchvision's ``rgb_to_grayscale(img, 3)`` on PIL: 'L' repeated in 3 channels.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 grey image.
    """
    return cv2.cvtColor(_grey(img), cv2.COLOR_GRAY2BGR)


# ------------------------------------------------------------------------------------ hue
def _pil_hsv_hue_saturation(img: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PIL's RGB -> HSV conversion (``rgb2hsv_row`` in Convert.c) on whole arrays.

    The same float32 / float64 steps as PIL's C code, so that ``int(h * 255)`` lands on the
    same side of every integer: hue levels that differ by one would move saturated pixels by
    up to 6 grey levels.

    Returns:
        tuple: ``(H, S, V)``: float64 hue levels in ``[0, 255]``, float32 saturation in
        ``[0, 1]`` (already quantised to PIL's 8 bits) and float32 value (the max channel).
    """
    blue, green, red = cv2.split(img)
    high = cv2.max(cv2.max(blue, green), red)
    low = cv2.min(cv2.min(blue, green), red)
    high_f = high.astype(np.float32)
    span = (high_f - low.astype(np.float32))
    grey = span == 0
    span[grey] = 1.
    with np.errstate(divide='ignore', invalid='ignore'):
        sat = np.trunc((span / high_f).astype(np.float64) * 255.)
    sat[grey] = 0
    rc, gc, bc = ((high_f - c.astype(np.float32)) / span for c in (red, green, blue))
    hue = np.where(red == high, (bc - gc).astype(np.float64),
                   np.where(green == high,
                            (2.0 + rc.astype(np.float64) - bc).astype(np.float32),
                            (4.0 + gc.astype(np.float64) - rc).astype(np.float32)))
    hue = np.fmod(hue.astype(np.float32).astype(np.float64) / 6.0 + 1.0, 1.0)
    hue = np.trunc(hue.astype(np.float32).astype(np.float64) * 255.0)
    hue[grey] = 0
    return hue, (sat / 255.).astype(np.float32), high_f


@lru_cache(maxsize=1)
def _hue_tables() -> Tuple[np.ndarray, np.ndarray]:
    """PIL's 8-bit hue and saturation as lookup tables.

    With ``span = max - min`` and ``x = max - mid``, PIL's hue of a pixel depends only on which
    channel is the largest and which the smallest (6 cases) and on ``(x, span)``: the channel
    differences it divides are ``0``, ``x`` or ``span``. So the exact hue levels fit in a
    ``(6, 256, 256)`` table, filled once from the literal conversion; the saturation level
    depends on ``(max, span)``.

    Returns:
        tuple: ``hue[case * 65536 + x * 256 + span]`` and ``sat[max * 256 + span]`` (uint8).
    """
    x, span = (a.ravel() for a in np.meshgrid(np.arange(256), np.arange(256), indexing='ij'))
    x = np.minimum(x, span)  # x <= span in every real pixel; the rest is never looked up
    high, mid, low = span, span - x, np.zeros_like(span)
    # (B, G, R) of each case: red max with blue / green min, green max with red / blue min,
    # blue max with green / red min, as _hue_case numbers them.
    cases = [(low, mid, high), (mid, low, high), (mid, high, low), (low, high, mid),
             (high, low, mid), (high, mid, low)]
    hue = np.stack([
        _pil_hsv_hue_saturation(np.stack(c, axis=-1)[None].astype(np.uint8))[0].ravel()
        for c in cases
    ]).astype(np.uint8)
    highs, spans = (a.ravel() for a in np.meshgrid(np.arange(256), np.arange(256),
                                                    indexing='ij'))
    with np.errstate(divide='ignore', invalid='ignore'):
        sat = np.trunc((spans.astype(np.float32) / highs.astype(np.float32)).astype(
            np.float64) * 255.)
    sat[(spans == 0) | (spans > highs)] = 0
    return hue.ravel(), sat.astype(np.uint8)


_HUE_DEGREES = (np.arange(256) * (360. / 255.)).astype(np.float32)
_SAT_FRACTION = (np.arange(256, dtype=np.float32) / np.float32(255.)).astype(np.float32)


def adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """torchvision's PIL ``adjust_hue``: rotate the 8-bit hue channel of PIL's ``HSV`` mode.

    PIL converts RGB to HSV with ``H = int(h * 255)``, ``S = int(s * 255)``, ``V = max``;
    torchvision adds ``int(hue_factor * 255)`` to ``H`` with uint8 wrap-around and PIL converts
    back. The forward conversion is PIL's exactly (lookup tables built from PIL's arithmetic,
    :func:`_hue_tables`); the way back is OpenCV's float ``HSV2BGR``, the same formulas as PIL's
    ``hsv2rgb`` (``p = v (1 - s)``, ``q = v (1 - s f)``, ``t = v (1 - s (1 - f))``) in float32,
    so results can differ by one level where PIL's rounding falls on a half. PIL's conversion
    costs about 2 ms per 160-px view, this about a tenth.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        hue_factor (float): Shift in turns of the hue circle, in ``[-0.5, 0.5]``.

    Returns:
        np.ndarray: The hue-rotated image.
    """
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor must be in [-0.5, 0.5], got {hue_factor}.')
    shift = np.uint8(int(np.int32(hue_factor * 255).astype(np.uint8)))
    hue_table, sat_table = _hue_tables()
    blue, green, red = cv2.split(img)
    high = cv2.max(cv2.max(blue, green), red)
    low = cv2.min(cv2.min(blue, green), red)
    # The case number of _hue_tables: 0/1 red max, 2/3 green max, 4/5 blue max (PIL tests red
    # first, then green), +1 unless the channel after the max in PIL's formula is the min.
    red_max = red == high
    green_max = (green == high) > red_max
    blue_max = ~(red_max | green_max)
    second = (red_max & (blue != low)) | (green_max & (red != low)) | (blue_max & (green != low))
    case = green_max.view(np.uint8) * 2 + blue_max.view(np.uint8) * 4 + second.view(np.uint8)
    high32, low32 = high.astype(np.int32), low.astype(np.int32)
    total = cv2.add(cv2.add(blue.astype(np.int32), green.astype(np.int32)), red.astype(np.int32))
    span = high32 - low32
    # x = max - mid = 2 max + min - (b + g + r)
    hue = hue_table.take((case.astype(np.int32) << 16) + ((2 * high32 + low32 - total) << 8)
                         + span)
    hue += shift  # uint8 wrap-around, as torchvision's ``np_h += shift``
    sat = sat_table.take((high32 << 8) + span)
    hsv = cv2.merge([_HUE_DEGREES.take(hue), _SAT_FRACTION.take(sat), high.astype(np.float32)])
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    out += 0.5  # PIL's round() of non-negative values, with the truncating cast below
    return out.astype(np.uint8)


# ----------------------------------------------------------------------------------- blur
@lru_cache(maxsize=1024)
def pil_box_kernel(sigma: float, passes: int = 3) -> np.ndarray:
    """One box of PIL's ``GaussianBlur(radius=sigma)``.

    PIL approximates a Gaussian of standard deviation ``sigma`` by ``passes`` box blurs of a
    fractional radius ``l + a`` (Gwosdek et al., 2011, as in PIL's BoxBlur.c): weights 1
    inside, ``a`` at both ends, normalised by ``2 (l + a) + 1``.

    Args:
        sigma (float): PIL's ``radius`` (the standard deviation), > 0.
        passes (int): Box-blur passes. Defaults to 3 (PIL's).

    Returns:
        np.ndarray: ``(1, 2 l + 3)`` float32 kernel.
    """
    sigma2 = sigma * sigma / passes
    length = math.sqrt(12. * sigma2 + 1.)
    inner = math.floor((length - 1.) / 2.)
    frac = (2 * inner + 1) * (inner * (inner + 1) - 3 * sigma2)
    frac /= 6 * (sigma2 - (inner + 1) * (inner + 1))
    box = np.ones(2 * inner + 3, np.float64)
    box[0] = box[-1] = frac
    box /= 2 * (inner + frac) + 1
    return box.astype(np.float32)[None]


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """PIL's ``ImageFilter.GaussianBlur(sigma)`` (MoCo-v2's blur).

    As PIL: three box blurs along rows, then three along columns, each rounded to uint8, with
    the border pixel replicated. OpenCV's 1-D filters do each pass.

    Args:
        img (np.ndarray): ``(H, W, C)`` uint8 image.
        sigma (float): Standard deviation in pixels (PIL's ``radius``).

    Returns:
        np.ndarray: The blurred image.
    """
    if sigma <= 0:
        return img.copy()
    box = pil_box_kernel(float(sigma))
    out = img
    for kernel in (box, box, box, box.T, box.T, box.T):
        out = cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    return out


def hflip(img: np.ndarray) -> np.ndarray:
    """Horizontal flip (contiguous copy). Exact."""
    return cv2.flip(img, 1)


# ---------------------------------------------------------------------------- AutoAugment
def posterize(img: np.ndarray, bits: int) -> np.ndarray:
    """``ImageOps.posterize``: keep the ``bits`` high bits. Exact."""
    mask = ~(2**(8 - int(bits)) - 1) & 255
    return _lut(img, np.arange(256) & mask)


def solarize(img: np.ndarray, threshold: float) -> np.ndarray:
    """``ImageOps.solarize``: invert levels ``>= threshold``. Exact."""
    levels = np.arange(256)
    return _lut(img, np.where(levels < threshold, levels, 255 - levels))


def invert(img: np.ndarray) -> np.ndarray:
    """``ImageOps.invert``. Exact."""
    return cv2.bitwise_not(img)


def _histograms(img: np.ndarray) -> np.ndarray:
    """``(C, 256)`` per-channel histograms."""
    return np.stack([
        cv2.calcHist([img], [c], None, [256], [0, 256]).ravel() for c in range(img.shape[2])
    ]).astype(np.int64)


def _per_channel_lut(img: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Apply one 256-entry table per channel (``tables`` is ``(C, 256)``)."""
    return cv2.LUT(img, np.ascontiguousarray(tables.T[None].astype(np.uint8)))


def autocontrast(img: np.ndarray) -> np.ndarray:
    """``ImageOps.autocontrast`` (cutoff 0): stretch each channel to ``[0, 255]``. Exact."""
    tables = []
    levels = np.arange(256, dtype=np.float64)
    for hist in _histograms(img):
        nonzero = np.flatnonzero(hist)
        low, high = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, 0)
        if high <= low:
            tables.append(levels)
            continue
        scale = 255.0 / (high - low)
        tables.append(np.clip(np.trunc(levels * scale + (-low * scale)), 0, 255))
    return _per_channel_lut(img, np.stack(tables))


def equalize(img: np.ndarray) -> np.ndarray:
    """``ImageOps.equalize``: PIL's per-channel histogram equalisation. Exact."""
    tables = []
    for hist in _histograms(img):
        used = hist[hist > 0]
        step = (int(used.sum()) - int(used[-1])) // 255 if used.size > 1 else 0
        if step == 0:
            tables.append(np.arange(256))
            continue
        before = np.concatenate([[0], np.cumsum(hist)[:-1]])
        tables.append(np.clip((step // 2 + before) // step, 0, 255))
    return _per_channel_lut(img, np.stack(tables))


_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.


def adjust_sharpness(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Sharpness``: blend with PIL's ``SMOOTH`` filter, border pixels kept."""
    smooth = cv2.filter2D(img, -1, _SMOOTH, borderType=cv2.BORDER_REPLICATE)
    # PIL's 3x3 filter leaves the outermost rows and columns as they were.
    smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1] = img[0], img[-1], img[:, 0], img[:, -1]
    return _blend_image(img, smooth, factor)


@lru_cache(maxsize=256)
def _affine_nearest_maps(height: int, width: int,
                         matrix: Tuple[float, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """Source pixel of each output pixel in PIL's nearest-neighbour affine transform.

    PIL (``ImagingTransformAffine``) samples the input at ``matrix @ (x + 0.5, y + 0.5, 1)``
    in 16.16 fixed point: every matrix entry and the start are rounded to multiples of 1/65536,
    and the source pixel is the integer part (negative: outside, the black fill). The same
    integers here make ``cv2.remap`` copy exactly PIL's pixels.
    """
    a, b, c, d, e, f = matrix

    def fix(value: float) -> int:
        return int(math.floor(value * 65536.0 + 0.5))

    ys, xs = np.mgrid[0:height, 0:width].astype(np.int64)
    src_x = (fix(c + b * 0.5 + a * 0.5) + ys * fix(b) + xs * fix(a)) >> 16
    src_y = (fix(f + e * 0.5 + d * 0.5) + ys * fix(e) + xs * fix(d)) >> 16
    outside = (src_x < 0) | (src_x >= width) | (src_y < 0) | (src_y >= height)
    src_x[outside] = -1  # cv2.remap's constant border: black
    src_y[outside] = -1
    return cv2.convertMaps(src_x.astype(np.float32), src_y.astype(np.float32), cv2.CV_16SC2)


def _affine_nearest(img: np.ndarray, matrix: Tuple[float, ...]) -> np.ndarray:
    map_xy, map_frac = _affine_nearest_maps(img.shape[0], img.shape[1], matrix)
    return cv2.remap(img, map_xy, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


def rotate(img: np.ndarray, angle: float) -> np.ndarray:
    """torchvision's ``rotate(img, angle)`` on PIL (nearest, about the centre, black fill).

    Args:
        img (np.ndarray): ``(H, W, C)`` uint8 image.
        angle (float): Degrees, counter-clockwise.

    Returns:
        np.ndarray: The rotated image, same size.
    """
    height, width = img.shape[:2]
    if angle % 360.0 == 0:
        return img.copy()
    # PIL's Image.rotate: the inverse matrix about the centre (w / 2, h / 2).
    rad = -math.radians(angle % 360.0)
    cos, sin = round(math.cos(rad), 15), round(math.sin(rad), 15)
    cx, cy = width / 2, height / 2
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    return _affine_nearest(img, (cos, sin, c, -sin, cos, f))


def shear_x(img: np.ndarray, magnitude: float) -> np.ndarray:
    """torchvision AutoAugment's ``ShearX`` on PIL: ``x_in = x + tan(atan(m)) * y``, nearest.

    Args:
        img (np.ndarray): ``(H, W, C)`` uint8 image.
        magnitude (float): Shear factor (AutoAugment's ``magnitude``).

    Returns:
        np.ndarray: The sheared image, same size.
    """
    shear = math.tan(math.radians(math.degrees(math.atan(magnitude))))
    return _affine_nearest(img, (1.0, shear, 0.0, 0.0, 1.0, 0.0))
