"""Fidelity of the fast uint8 ops against what they replace: torchvision on PIL images.

Every operation of the release's view pipeline (colour jitter steps at fixed factors, grayscale,
blur at fixed sigma, flip, each AutoAugment ImageNet-policy operation at each magnitude it uses)
must agree with torchvision's PIL result to a mean absolute difference <= 1 grey level and a
maximum <= 3, on photo-like images (procedural scenes with soft edges, shading and noise).
"""
import cv2
import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter
from torchvision.transforms import AutoAugment, AutoAugmentPolicy, InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

from revisit_ssl.datasets.transforms import (ConstrainedMultiCrop, FastAutoAugment,
                                             FastColorJitter, build_view_pipeline)
from revisit_ssl.datasets.transforms import pil_equivalent_ops as ops
from revisit_ssl.datasets.transforms.fast_auto_augment import AUTO_AUGMENT_OPS
from revisit_ssl.utils.demo_data import draw_scene

MEAN_TOL, MAX_TOL = 1.0, 3


def natural_view(seed: int, size) -> np.ndarray:
    """A photo-like BGR view: a demo scene, softened, shaded, noisy, cropped and shrunk."""
    rng = np.random.default_rng(seed)
    scene = draw_scene(rng, (320, 240)).image.astype(np.float32)
    scene = cv2.GaussianBlur(scene, (0, 0), 1.2)
    ys, xs = np.mgrid[0:240, 0:320].astype(np.float32)
    scene = scene * (0.85 + 0.3 * xs / 320)[..., None] + rng.normal(0, 3, scene.shape)
    scene = np.clip(scene, 0, 255).astype(np.uint8)[20:220, 30:290]
    return cv2.resize(scene, (size[1], size[0]), interpolation=cv2.INTER_AREA)


VIEWS = [natural_view(0, (160, 160)), natural_view(1, (96, 96)), natural_view(2, (53, 71))]


def to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(img[..., ::-1]))


def from_pil(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert('RGB'))[..., ::-1]


def assert_close(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    assert ours.shape == reference.shape and ours.dtype == np.uint8, what
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.mean() <= MEAN_TOL and diff.max() <= MAX_TOL, (what, diff.mean(), diff.max())


PHOTOMETRIC = [
    ('brightness 0.6', lambda a: ops.adjust_brightness(a, 0.6),
     lambda p: TF.adjust_brightness(p, 0.6)),
    ('brightness 1.4', lambda a: ops.adjust_brightness(a, 1.4),
     lambda p: TF.adjust_brightness(p, 1.4)),
    ('contrast 0.6', lambda a: ops.adjust_contrast(a, 0.6), lambda p: TF.adjust_contrast(p, 0.6)),
    ('contrast 1.4', lambda a: ops.adjust_contrast(a, 1.4), lambda p: TF.adjust_contrast(p, 1.4)),
    ('saturation 0.6', lambda a: ops.adjust_saturation(a, 0.6),
     lambda p: TF.adjust_saturation(p, 0.6)),
    ('saturation 1.4', lambda a: ops.adjust_saturation(a, 1.4),
     lambda p: TF.adjust_saturation(p, 1.4)),
    ('hue -0.1', lambda a: ops.adjust_hue(a, -0.1), lambda p: TF.adjust_hue(p, -0.1)),
    ('hue -0.03', lambda a: ops.adjust_hue(a, -0.03), lambda p: TF.adjust_hue(p, -0.03)),
    ('hue 0.07', lambda a: ops.adjust_hue(a, 0.07), lambda p: TF.adjust_hue(p, 0.07)),
    ('hue 0.5', lambda a: ops.adjust_hue(a, 0.5), lambda p: TF.adjust_hue(p, 0.5)),
    ('grayscale', ops.to_grayscale, lambda p: TF.rgb_to_grayscale(p, num_output_channels=3)),
    ('blur 0.1', lambda a: ops.gaussian_blur(a, 0.1),
     lambda p: p.filter(ImageFilter.GaussianBlur(0.1))),
    ('blur 0.7', lambda a: ops.gaussian_blur(a, 0.7),
     lambda p: p.filter(ImageFilter.GaussianBlur(0.7))),
    ('blur 1.45', lambda a: ops.gaussian_blur(a, 1.45),
     lambda p: p.filter(ImageFilter.GaussianBlur(1.45))),
    ('blur 2.0', lambda a: ops.gaussian_blur(a, 2.0),
     lambda p: p.filter(ImageFilter.GaussianBlur(2.0))),
    ('flip', ops.hflip, TF.hflip),
]


@pytest.mark.parametrize('name, ours, reference', PHOTOMETRIC, ids=[c[0] for c in PHOTOMETRIC])
@pytest.mark.parametrize('view', range(len(VIEWS)))
def test_photometric_op_matches_torchvision_on_pil(name, ours, reference, view):
    img = VIEWS[view]
    out = ours(img.copy())
    assert_close(out, from_pil(reference(to_pil(img))), name)
    if name not in ('flip', 'grayscale', 'blur 0.1'):  # sigma 0.1 moves no 8-bit pixel
        assert not np.array_equal(out, img), name  # the op did something


def _policy_ops():
    """Every (operation, magnitude bin) of torchvision's ImageNet policy, both signs."""
    cases = set()
    for sub_policy in AutoAugment(AutoAugmentPolicy.IMAGENET).policies:
        for op_name, _, magnitude_id in sub_policy:
            signed = AUTO_AUGMENT_OPS[op_name][2]
            for sign in ((1, -1) if signed else (1, )):
                magnitude = FastAutoAugment.magnitude(op_name, magnitude_id)
                cases.add((op_name, magnitude_id, sign * magnitude))
    return sorted(cases, key=str)


POLICY_OPS = _policy_ops()


@pytest.mark.parametrize('op_name, magnitude_id, magnitude', POLICY_OPS,
                         ids=[f'{c[0]}-{c[1]}-{c[2]:+.3f}' for c in POLICY_OPS])
@pytest.mark.parametrize('view', range(len(VIEWS)))
def test_auto_augment_op_matches_torchvision_on_pil(op_name, magnitude_id, magnitude, view):
    img = VIEWS[view]
    ours = AUTO_AUGMENT_OPS[op_name][0](img.copy(), magnitude)
    reference = _apply_op(to_pil(img), op_name, magnitude, InterpolationMode.NEAREST, None)
    assert_close(ours, from_pil(reference), f'{op_name} {magnitude}')


def test_policy_covers_all_ops_and_magnitudes_are_torchvision_bins():
    assert {c[0] for c in POLICY_OPS} == {
        'ShearX', 'Rotate', 'Color', 'Contrast', 'Sharpness', 'Posterize', 'Solarize',
        'AutoContrast', 'Equalize', 'Invert'}
    space = AutoAugment()._augmentation_space(10, (160, 160))
    for op_name, magnitude_id, magnitude in POLICY_OPS:
        if magnitude_id is not None:
            assert abs(magnitude) == float(space[op_name][0][magnitude_id].item()), op_name


def assert_chain_close(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    """Chains of ops: a one-level difference after one step can move a pixel's 8-bit hue by
    a level in a later hue step (several grey levels), so a few pixels may exceed 3."""
    diff = np.abs(ours.astype(int) - reference.astype(int))
    assert diff.mean() <= 0.05 and (diff > MAX_TOL).mean() < 1e-3, (what, diff.mean(),
                                                                     (diff > MAX_TOL).mean())


def test_jitter_draws_and_applies_like_torchvision():
    """Same draws replayed through torchvision's functional ops on PIL images."""
    jitter = FastColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    reference_steps = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation,
                       TF.adjust_hue]
    for seed in range(12):
        img = VIEWS[seed % len(VIEWS)]
        np.random.seed(seed)
        out = jitter(dict(img=img.copy()))['img']
        np.random.seed(seed)
        order = np.random.permutation(4)
        factors = [np.random.uniform(0.6, 1.4) for _ in range(3)] + [
            np.random.uniform(-0.1, 0.1)]
        pil = to_pil(img)
        for index in order:
            pil = reference_steps[index](pil, float(factors[index]))
        assert_chain_close(out, from_pil(pil), f'jitter seed {seed}')


def test_auto_augment_draws_and_applies_like_torchvision():
    augment = FastAutoAugment()
    policies = AutoAugment(AutoAugmentPolicy.IMAGENET).policies
    changed = 0
    for seed in range(40):
        img = VIEWS[seed % len(VIEWS)]
        np.random.seed(seed)
        out = augment(dict(img=img.copy()))['img']
        np.random.seed(seed)
        sub_policy = policies[np.random.randint(len(policies))]
        probs, signs = np.random.rand(2), np.random.randint(2, size=2)
        pil = to_pil(img)
        for i, (op_name, prob, magnitude_id) in enumerate(sub_policy):
            if probs[i] <= prob:
                magnitude = FastAutoAugment.magnitude(op_name, magnitude_id)
                if AUTO_AUGMENT_OPS[op_name][2] and signs[i] == 0:
                    magnitude = -magnitude
                pil = _apply_op(pil, op_name, magnitude, InterpolationMode.NEAREST, None)
        assert_chain_close(out, from_pil(pil), f'AutoAugment seed {seed}')
        changed += not np.array_equal(out, img)
    assert changed > 25


def test_torch_resize_backend_keeps_todays_boxes_and_pillow_views():
    rng = np.random.default_rng(3)
    img = cv2.resize(natural_view(3, (240, 320)), (640, 480))
    img = np.clip(img.astype(int) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
    results = {}
    for backend in ('pillow', 'torch'):
        np.random.seed(0)
        results[backend] = ConstrainedMultiCrop(backend=backend)(dict(img=img.copy()))
    # Boxes are the sampler's (unchanged code); for seed 0 on 480 x 640 they are today's:
    today = [[102, 35, 573, 451], [182, 5, 562, 399], [240, 34, 417, 255],
             [431, 15, 606, 160], [411, 122, 634, 296], [332, 135, 520, 286]]
    assert results['torch']['crop_boxes'].tolist() == today
    assert results['pillow']['crop_boxes'].tolist() == today
    for ours, pillow in zip(results['torch']['img'], results['pillow']['img']):
        diff = np.abs(ours.astype(int) - pillow.astype(int))
        assert ours.shape == pillow.shape and ours.dtype == np.uint8
        assert diff.mean() < 0.1 and diff.max() <= 8, (diff.mean(), diff.max())


def test_torch_resize_backend_grey_and_bad_interpolation():
    grey = np.random.default_rng(0).integers(0, 256, (50, 40), dtype=np.uint8)
    np.random.seed(1)
    views = ConstrainedMultiCrop(large_size=16, small_size=8, backend='torch')(
        dict(img=grey))['img']
    assert [v.shape for v in views] == [(16, 16)] * 2 + [(8, 8)] * 4
    with pytest.raises(ValueError, match="'bilinear' and 'bicubic'"):
        ConstrainedMultiCrop(backend='torch', interpolation='nearest')


def test_config_view_pipeline_runs_without_pil_round_trips(monkeypatch):
    # The fast path never makes a PIL image: fail if it tries.
    def refuse(*args, **kwargs):
        raise AssertionError('PIL image created in the fast path')

    pipeline = build_view_pipeline([
        dict(type='ConstrainedMultiCrop', backend='torch'),
        dict(type='MultiCropViewAugment', a_plus=True,
             key_transforms=_fast_view(), positive_transforms=_fast_view(),
             auto_augment_transforms=[dict(type='FastRandomFlip'),
                                      dict(type='FastAutoAugment')]),
    ])
    monkeypatch.setattr(Image, 'fromarray', refuse)
    monkeypatch.setattr(Image, 'frombuffer', refuse)
    img = cv2.resize(VIEWS[0], (320, 240))
    for seed in range(20):
        np.random.seed(seed)
        out = pipeline(dict(img=img.copy()))
        assert [v.shape for v in out['img']] == [(160, 160, 3)] * 2 + [(96, 96, 3)] * 4
        assert out['auto_augmented_views'][1] is False


def _fast_view():
    from revisit_ssl.datasets.transforms import fast_moco_v2_view_transforms
    return fast_moco_v2_view_transforms()
