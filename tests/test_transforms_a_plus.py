"""A+ (RandomChoiceAutoAugment) and the per-view augmentation of the multi-crop views."""
import math
import re

import numpy as np
import pytest

from revisit_ssl.datasets.transforms import (MultiCropViewAugment, RandomChoiceAutoAugment,
                                             build_view_pipeline, moco_v2_view_transforms)


class _Mark:
    """A transform that records which branch ran."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, results: dict) -> dict:
        results.setdefault('ran', []).append(self.name)
        return results


def _binomial_ok(successes: int, trials: int, prob: float, sigmas: float = 4.5) -> bool:
    return abs(successes - trials * prob) <= sigmas * math.sqrt(trials * prob * (1 - prob))


def test_branch_frequency_and_flag_match():
    choice = RandomChoiceAutoAugment(
        prob=0.3, auto_augment_transforms=[_Mark('auto')], standard_transforms=[_Mark('std')])
    np.random.seed(0)
    taken = 0
    for _ in range(3000):
        results = choice(dict(img=None))
        # The flag says which branch really ran, and exactly one ran.
        assert results['ran'] == (['auto'] if results['auto_augmented'] else ['std'])
        taken += results['auto_augmented']
    assert _binomial_ok(taken, 3000, 0.3), taken


@pytest.mark.parametrize('prob, expected', [(0., 0), (1., 200), ((0., 1.), 0), ((1, 0), 200)])
def test_extreme_probabilities(prob, expected):
    choice = RandomChoiceAutoAugment(
        prob=prob, auto_augment_transforms=[_Mark('auto')], standard_transforms=[_Mark('std')])
    np.random.seed(1)
    assert sum(choice(dict(img=None))['auto_augmented'] for _ in range(200)) == expected


@pytest.mark.parametrize('prob, error, match', [
    (1.5, ValueError, r'\[0, 1\]'),
    (-0.1, ValueError, r'\[0, 1\]'),
    ((0.3, 0.3), ValueError, 'sum to 1'),
    ((0.5, 0.6), ValueError, 'sum to 1'),
    ((1.2, -0.2), ValueError, r'\[0, 1\]'),
    ((0.5, ), TypeError, 'pair'),
    ('half', TypeError, 'number'),
])
def test_bad_probabilities_raise_clear_errors(prob, error, match):
    with pytest.raises(error, match=match):
        RandomChoiceAutoAugment(prob=prob)
    with pytest.raises(error, match=match):
        MultiCropViewAugment(a_plus=False, a_plus_prob=prob)


def test_key_never_takes_auto_augment_and_positives_at_rate_p():
    views = [np.full((8, 8, 3), 100, np.uint8)] * 2 + [np.full((6, 6, 3), 60, np.uint8)] * 4
    augment = MultiCropViewAugment(a_plus=True, a_plus_prob=0.5)
    np.random.seed(2)
    per_view = np.zeros(6, dtype=int)
    draws = 300
    for _ in range(draws):
        results = augment(dict(img=list(views)))
        assert [v.shape for v in results['img']] == [v.shape for v in views]
        per_view += results['auto_augmented_views']
    assert per_view[1] == 0  # the key
    positives = int(per_view.sum())
    assert _binomial_ok(positives, 5 * draws, 0.5), per_view
    assert all(_binomial_ok(int(n), draws, 0.5) for n in per_view[[0, 2, 3, 4, 5]]), per_view


def test_without_a_plus_nothing_takes_auto_augment_and_views_change():
    rng = np.random.default_rng(3)
    views = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(6)]
    augment = MultiCropViewAugment()
    np.random.seed(3)
    changed = 0
    for _ in range(50):
        results = augment(dict(img=list(views)))
        assert results['auto_augmented_views'] == [False] * 6
        changed += sum(not np.array_equal(a, b) for a, b in zip(results['img'], views))
    assert changed > 0.8 * 300  # the MoCo-v2 augmentations do run on every view


def test_custom_key_and_positive_pipelines_route_by_view():
    augment = MultiCropViewAugment(
        key_transforms=[_Mark('key')], positive_transforms=[_Mark('positive')])
    seen = []

    def record(results):
        seen.append(results['ran'][-1])
        return results

    augment.key_pipeline.transforms.append(record)
    augment.positive_pipeline.transforms.append(record)
    augment(dict(img=[np.zeros((4, 4, 3), np.uint8)] * 5, ran=[]))
    assert seen == ['positive', 'key', 'positive', 'positive', 'positive']


def test_grey_views_become_three_channels_and_errors():
    augment = MultiCropViewAugment()
    results = augment(dict(img=[np.zeros((5, 5), np.uint8), np.zeros((5, 5, 1), np.uint8)]))
    assert [v.shape for v in results['img']] == [(5, 5, 3), (5, 5, 3)]
    with pytest.raises(TypeError, match='list of views'):
        augment(dict(img=np.zeros((5, 5, 3), np.uint8)))
    with pytest.raises(ValueError, match='key_index'):
        augment(dict(img=[np.zeros((5, 5, 3), np.uint8)]))


def test_a_plus_pipeline_builds_from_config_names():
    # Built from type names outside any Runner: nested RandomApply must still find them.
    pipeline = build_view_pipeline([dict(type='MultiCropViewAugment', a_plus=True)])
    assert isinstance(pipeline.transforms[0], MultiCropViewAugment)
    assert 'AutoAugment' in repr(pipeline.transforms[0].positive_pipeline)


def _blur_ranges(augment):
    return re.findall(r'GaussianBlur\([^)]*magnitude_range=\(([^)]*)\)', repr(augment))


def test_blur_sigma_reaches_key_and_standard_positive_pipelines():
    assert _blur_ranges(MultiCropViewAugment(a_plus=True)) == ['0.1, 2.0'] * 2
    augment = MultiCropViewAugment(a_plus=True, blur_sigma=(0.014, 0.29))
    assert augment.blur_sigma == (0.014, 0.29)
    assert _blur_ranges(augment) == ['0.014, 0.29'] * 2
    # an explicit key pipeline keeps its own blur; the default positive one is scaled
    custom = MultiCropViewAugment(key_transforms=[dict(type='RandomFlip', prob=0.5)],
                                  blur_sigma=(0.2, 0.3))
    assert _blur_ranges(custom) == ['0.2, 0.3']


def test_blur_sigma_blurs_like_pil_with_that_sigma():
    from PIL import Image, ImageFilter
    blur = next(t for t in moco_v2_view_transforms(blur_sigma=(0.6, 0.6))
                if t['type'] == 'GaussianBlur')
    pipeline = build_view_pipeline([dict(blur, prob=1.0)])
    impulse = np.zeros((9, 9, 3), np.uint8)
    impulse[4, 4] = 255
    out = pipeline(dict(img=impulse.copy()))['img']
    expected = np.array(Image.fromarray(impulse).filter(ImageFilter.GaussianBlur(0.6)))
    np.testing.assert_array_equal(out, expected)
    # sigma 0.6 keeps most of the impulse in its pixel; MoCo-v2's sigma up to 2 would not
    assert 0 < out[4, 4, 0] < 255 and out[4, 4, 0] > 2 * out[4, 5, 0] > 0


@pytest.mark.parametrize('sigma, match', [((0.0, 1.0), '0 < min <= max'),
                                          ((2.0, 1.0), '0 < min <= max'),
                                          ((1.0, ), 'two numbers'),
                                          ('wide', 'two numbers')])
def test_bad_blur_sigma_raises(sigma, match):
    with pytest.raises(ValueError, match=match):
        MultiCropViewAugment(blur_sigma=sigma)


def test_blur_sigma_with_both_explicit_pipelines_is_an_error():
    flip = [dict(type='RandomFlip', prob=0.5)]
    with pytest.raises(ValueError, match='magnitude_range'):
        MultiCropViewAugment(key_transforms=flip, positive_transforms=flip,
                             blur_sigma=(0.1, 0.2))
