"""Hue-safe colour jitter: negative hue shifts work under numpy 2 and rotate hue correctly."""
import colorsys

import mmcv
import numpy as np
import pytest

from revisit_ssl.datasets.transforms import (HueSafeColorJitter, adjust_hue,
                                             build_view_pipeline, moco_v2_view_transforms)


def _reference_hue_rotation(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Rotate hue pixel by pixel with colorsys in floating point (an independent path).

    The shift is the one 8-bit hue channels can express, ``int(hue_factor * 255)`` of 256
    levels, taken modulo a full turn.
    """
    shift = (int(hue_factor * 255) % 256) / 256.
    out = np.empty_like(img)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            blue, green, red = img[y, x] / 255.
            hue, sat, val = colorsys.rgb_to_hsv(red, green, blue)
            red, green, blue = colorsys.hsv_to_rgb((hue + shift) % 1., sat, val)
            out[y, x] = np.rint(np.array([blue, green, red]) * 255)
    return out


@pytest.fixture(scope='module')
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
@pytest.mark.parametrize('hue_factor', [-0.5, -0.1, -0.03, 0.07, 0.5])
def test_adjust_hue_matches_independent_rotation(image, backend, hue_factor):
    out = adjust_hue(image, hue_factor, backend=backend)
    assert out.shape == image.shape and out.dtype == image.dtype
    diff = np.abs(out.astype(int) - _reference_hue_rotation(image, hue_factor).astype(int))
    # Only the 8-bit quantisation of H, S and V separates the two paths.
    assert diff.max() <= 10 and diff.mean() < 1.5, (diff.max(), diff.mean())
    if abs(hue_factor) < 0.5:
        # The opposite rotation is far off, so the check above pins the direction.
        wrong = _reference_hue_rotation(image, -hue_factor).astype(int)
        assert np.abs(out.astype(int) - wrong).mean() > 4 * diff.mean() + 2


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_positive_shift_identical_to_mmcv(image, backend):
    # mmcv's own function works for positive shifts: ours must be bit-identical there.
    assert np.array_equal(
        adjust_hue(image, 0.1, backend=backend),
        mmcv.adjust_hue(image, 0.1, backend=backend))


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_negative_shift_equals_complementary_positive_shift(image, backend):
    # -0.1 turns = 256 - 25 levels; mmcv can compute the positive equivalent of 231 levels
    # through hue_factor=0.5 (127 levels) followed by 104 levels (0.408 * 255 -> 104).
    via_mmcv = mmcv.adjust_hue(
        mmcv.adjust_hue(image, 0.5, backend=backend), 0.408, backend=backend)
    ours_two_steps = adjust_hue(adjust_hue(image, 0.5, backend=backend), 0.408,
                                backend=backend)
    assert np.array_equal(ours_two_steps, via_mmcv)
    # One step of -0.1 gives (up to one HSV round trip) the same colours.
    diff = np.abs(adjust_hue(image, -0.1, backend=backend).astype(int) - via_mmcv)
    assert diff.mean() < 1.5


def test_grey_images_have_no_hue(image):
    grey = image[..., 0]
    assert adjust_hue(grey, -0.2) is grey
    assert np.array_equal(adjust_hue(grey[..., None], 0.3), grey[..., None])
    with pytest.raises(ValueError, match='hue_factor'):
        adjust_hue(image, 0.7)


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_jitter_with_negative_hue_range_applies_drawn_shift(image, backend):
    jitter = HueSafeColorJitter(hue=(-0.3, -0.05), backend=backend)
    for seed in range(20):
        np.random.seed(seed)
        out = jitter(dict(img=image.copy()))['img']
        # ColorJitter draws: permutation of the 4 steps, then the hue factor.
        np.random.seed(seed)
        np.random.permutation(4)
        hue = np.random.uniform(-0.3, -0.05)
        assert np.array_equal(out, adjust_hue(image, hue, backend=backend))


def test_moco_v2_view_pipeline_survives_many_draws(image):
    # mmpretrain's ColorJitter(hue=0.1) raised OverflowError on about half of these draws.
    pipeline = build_view_pipeline(moco_v2_view_transforms())
    np.random.seed(0)
    changed = 0
    for _ in range(200):
        out = pipeline(dict(img=image.copy()))['img']
        assert out.shape == image.shape and out.dtype == np.uint8
        changed += not np.array_equal(out, image)
    assert changed > 150
