"""The fast view transforms: random parameters from numpy's global state, rates, errors."""
import math

import numpy as np
import pytest

from revisit_ssl.datasets.transforms import (FastAutoAugment, FastColorJitter, FastGaussianBlur,
                                             FastRandomFlip, FastRandomGrayscale,
                                             MultiCropViewAugment,
                                             fast_auto_augment_view_transforms,
                                             fast_moco_v2_view_transforms)
from revisit_ssl.datasets.transforms import pil_equivalent_ops as ops

IMG = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


def _binomial_ok(successes: int, trials: int, prob: float, sigmas: float = 4.5) -> bool:
    return abs(successes - trials * prob) <= sigmas * math.sqrt(trials * prob * (1 - prob))


@pytest.mark.parametrize('transform', [
    FastColorJitter(0.4, 0.4, 0.4, 0.1), FastRandomGrayscale(0.5), FastGaussianBlur(prob=0.5),
    FastRandomFlip(), FastAutoAugment()
], ids=lambda t: type(t).__name__)
def test_draws_come_from_numpy_global_state(transform):
    # A per-sample reseed of numpy's global RNG (what the sampler does) must fix the output.
    outputs = []
    for seed in (3, 3, 4, 5, 6, 7):
        np.random.seed(seed)
        outputs.append(transform(dict(img=IMG.copy()))['img'])
    assert np.array_equal(outputs[0], outputs[1])
    assert any(not np.array_equal(outputs[0], o) for o in outputs[2:])


def test_grayscale_flip_and_blur_rates():
    np.random.seed(0)
    grey = flips = blurred = 0
    trials = 2000
    gray, flip, blur = FastRandomGrayscale(0.2), FastRandomFlip(0.5), FastGaussianBlur(prob=0.5)
    for _ in range(trials):
        out = gray(dict(img=IMG))['img']
        grey += bool((out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all())
        flipped = flip(dict(img=IMG))
        assert flipped['flip'] == (not np.array_equal(flipped['img'], IMG))
        assert flipped['flip_direction'] == ('horizontal' if flipped['flip'] else None)
        flips += flipped['flip']
        blurred += not np.array_equal(blur(dict(img=IMG))['img'], IMG)
    assert _binomial_ok(grey, trials, 0.2) and _binomial_ok(flips, trials, 0.5)
    assert _binomial_ok(blurred, trials, 0.5)


def test_blur_sigma_is_drawn_in_range():
    blur = FastGaussianBlur(sigma=(0.6, 0.6), prob=1.)
    impulse = np.zeros((9, 9, 3), np.uint8)
    impulse[4, 4] = 255
    out = blur(dict(img=impulse))['img']
    assert np.array_equal(out, ops.gaussian_blur(impulse, 0.6))
    assert 0 < out[4, 4, 0] < 255 and out[4, 4, 0] > 2 * out[4, 5, 0] > 0


def test_jitter_identity_ranges_change_nothing():
    np.random.seed(0)
    assert np.array_equal(FastColorJitter()(dict(img=IMG.copy()))['img'], IMG)


@pytest.mark.parametrize('make, match', [
    (lambda: FastGaussianBlur(sigma=(0., 1.)), '0 < min <= max'),
    (lambda: FastGaussianBlur(sigma='wide'), 'two numbers'),
    (lambda: FastRandomGrayscale(1.5), r'\[0, 1\]'),
    (lambda: FastColorJitter(hue=0.7), 'hue range'),
    (lambda: FastColorJitter(brightness=-1), 'non-negative'),
    (lambda: FastAutoAugment(policy='cifar10'), 'imagenet'),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_non_uint8_or_grey_views_are_a_clear_error():
    with pytest.raises(TypeError, match='MultiCropViewAugment'):
        FastColorJitter(0.4)(dict(img=IMG.astype(np.float32)))
    with pytest.raises(TypeError, match=r'\(H, W, 3\) uint8'):
        FastAutoAugment()(dict(img=IMG[..., 0]))


def test_key_never_auto_augmented_with_the_fast_lists():
    augment = MultiCropViewAugment(
        a_plus=True, key_transforms=fast_moco_v2_view_transforms(),
        positive_transforms=fast_moco_v2_view_transforms(),
        auto_augment_transforms=fast_auto_augment_view_transforms())
    assert 'FastAutoAugment' in repr(augment.positive_pipeline)
    assert 'FastAutoAugment' not in repr(augment.key_pipeline)
    views = [np.full((8, 8, 3), 100, np.uint8)] * 2 + [np.full((6, 6, 3), 60, np.uint8)] * 4
    np.random.seed(2)
    per_view = np.zeros(6, dtype=int)
    for _ in range(300):
        out = augment(dict(img=list(views)))
        assert all(v.dtype == np.uint8 for v in out['img'])
        per_view += out['auto_augmented_views']
    assert per_view[1] == 0
    assert all(_binomial_ok(int(n), 300, 0.5) for n in per_view[[0, 2, 3, 4, 5]]), per_view
