"""ConstrainedMultiCrop: the overlap rule over many seeded draws, boxes, views and odd images."""
import mmcv
import numpy as np
import pytest

from revisit_ssl.datasets.transforms import ConstrainedMultiCrop

NUM_DRAWS = 1200
KEY = ConstrainedMultiCrop.KEY_INDEX


def _image_sizes(rng: np.random.Generator, num: int):
    """(height, width) pairs: typical photos, extreme aspect ratios and tiny images."""
    fixed = [(480, 640), (640, 480), (375, 500), (96, 96), (50, 60), (20, 300), (300, 20),
             (7, 500), (1000, 37), (3, 2), (1, 1), (1, 400), (159, 161), (12, 12)]
    sizes = list(fixed)
    while len(sizes) < num:
        if len(sizes) % 2:
            # Log-uniform sides from 1 to 1500 px: many images smaller than the crops, many
            # extreme aspect ratios.
            height, width = np.exp(rng.uniform(0, np.log(1500), 2)).astype(int) + 1
        else:
            # Photo-like: 100 to 1000 px high, aspect ratio 0.6 to 1.6.
            height = rng.integers(100, 1000)
            width = max(100, int(height * rng.uniform(0.6, 1.6)))
        sizes.append((int(height), int(width)))
    return sizes


def _overlap_fraction(boxes: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Fraction of each box's area inside ``key`` (independent of the sampler's code)."""
    fractions = []
    for x1, y1, x2, y2 in boxes.tolist():
        inter_w = max(0, min(x2, key[2]) - max(x1, key[0]))
        inter_h = max(0, min(y2, key[3]) - max(y1, key[1]))
        fractions.append(inter_w * inter_h / ((x2 - x1) * (y2 - y1)))
    return np.array(fractions)


def _assert_inside(boxes: np.ndarray, height: int, width: int) -> None:
    x1, y1, x2, y2 = boxes.T
    assert (x1 >= 0).all() and (y1 >= 0).all(), boxes
    assert (x2 <= width).all() and (y2 <= height).all(), (boxes, height, width)
    assert (x2 > x1).all() and (y2 > y1).all(), boxes


def test_constrained_small_crops_meet_overlap_rule_over_many_draws():
    crop = ConstrainedMultiCrop()  # paper defaults: 2 x 160 px, 4 x 96 px, 20% overlap
    rng = np.random.default_rng(0)
    total_fallbacks, typical_fallbacks, checked = 0, 0, 0
    for height, width in _image_sizes(rng, NUM_DRAWS):
        boxes, num_fallbacks = crop.sample_boxes(height, width, rng)
        assert boxes.shape == (6, 4) and boxes.dtype == np.int64
        _assert_inside(boxes, height, width)
        fractions = _overlap_fraction(boxes[2:], boxes[KEY])
        violations = int((fractions < 0.2 - 1e-12).sum())
        # Every crop that was not a fallback meets the rule, so violations <= fallbacks.
        assert violations <= num_fallbacks <= 4, (height, width, boxes, num_fallbacks)
        total_fallbacks += num_fallbacks
        if min(height, width) >= 100 and max(height, width) / min(height, width) < 2:
            typical_fallbacks += num_fallbacks
            checked += 4
    assert checked > 2000
    # On photo-like images 50 tries essentially always find a crop (so the rule is enforced,
    # not bypassed through fallbacks); extreme aspect ratios may fall back.
    assert typical_fallbacks <= 0.002 * checked, (typical_fallbacks, checked)
    assert total_fallbacks < 0.2 * 4 * NUM_DRAWS


def test_unconstrained_multi_crop_violates_rule_measurably():
    rng = np.random.default_rng(1)
    crop = ConstrainedMultiCrop(constrained=False)
    violating, total = 0, 0
    for _ in range(NUM_DRAWS):
        boxes, num_fallbacks = crop.sample_boxes(480, 640, rng)
        assert num_fallbacks == 0
        _assert_inside(boxes, 480, 640)
        violating += int((_overlap_fraction(boxes[2:], boxes[KEY]) < 0.2).sum())
        total += 4
    # About 16% of MC small crops have less than 20% of their area in the key.
    assert 0.08 < violating / total < 0.3, violating / total


def test_impossible_constraint_counts_fallbacks_instead_of_looping():
    # A key of 1% of the image can never hold 100% of a crop of 50% of the image.
    crop = ConstrainedMultiCrop(
        large_scale=(0.01, 0.01), small_scale=(0.5, 0.5), min_overlap=1.0, max_tries=7)
    rng = np.random.default_rng(2)
    for _ in range(50):
        boxes, num_fallbacks = crop.sample_boxes(200, 200, rng)
        assert num_fallbacks == 4
        _assert_inside(boxes, 200, 200)
        # The fallbacks are unconstrained crops of the requested size, not empty boxes.
        areas = (boxes[2:, 2] - boxes[2:, 0]) * (boxes[2:, 3] - boxes[2:, 1])
        assert np.all(np.abs(areas / 40000 - 0.5) < 0.05)


def test_small_crops_follow_key_not_query():
    # With a tiny key, constrained small crops cluster around it; so they must use view 1.
    crop = ConstrainedMultiCrop(large_scale=(0.05, 0.05), small_scale=(0.02, 0.02),
                                min_overlap=0.5, max_tries=1000)
    rng = np.random.default_rng(3)
    for _ in range(200):
        boxes, num_fallbacks = crop.sample_boxes(400, 400, rng)
        assert num_fallbacks == 0
        assert (_overlap_fraction(boxes[2:], boxes[KEY]) >= 0.5).all()


def test_official_code_setting_uses_target_area():
    crop = ConstrainedMultiCrop(min_overlap=0.1, overlap_area='target', max_tries=10)
    rng = np.random.default_rng(4)
    fractions = []
    for _ in range(300):
        boxes, num_fallbacks = crop.sample_boxes(480, 640, rng)
        if num_fallbacks == 0:
            fractions.extend(_overlap_fraction(boxes[2:], boxes[KEY]))
    # Rounding the sides changes the area by at most a few percent.
    assert min(fractions) >= 0.1 * 0.9
    assert min(fractions) < 0.2  # the weaker rule does admit crops the paper's rule rejects


def test_same_seed_same_boxes_and_global_numpy_seeding():
    crop = ConstrainedMultiCrop()
    first = crop.sample_boxes(300, 400, np.random.default_rng(7))
    again = crop.sample_boxes(300, 400, np.random.default_rng(7))
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    np.random.seed(11)
    global_a = crop.sample_boxes(300, 400)[0]
    np.random.seed(11)
    global_b = crop.sample_boxes(300, 400)[0]
    assert np.array_equal(global_a, global_b)
    assert not np.array_equal(global_a, crop.sample_boxes(300, 400)[0])


def test_views_are_the_resized_boxes_in_view_order():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    crop = ConstrainedMultiCrop(large_size=(24, 20), small_size=12, backend='cv2')
    np.random.seed(0)
    results = crop(dict(img=img.copy(), img_path='x.jpg'))
    views, boxes = results['img'], results['crop_boxes']
    assert len(views) == 6 and boxes.shape == (6, 4)
    assert isinstance(results['num_crop_fallbacks'], int)
    for index, (view, (x1, y1, x2, y2)) in enumerate(zip(views, boxes)):
        size = (20, 24) if index < 2 else (12, 12)
        expected = mmcv.imresize(img[y1:y2, x1:x2], size, backend='cv2')
        assert np.array_equal(view, expected), index
    assert results['img_path'] == 'x.jpg'  # other keys untouched


@pytest.mark.parametrize('shape', [(1, 1), (3, 900), (900, 3), (40, 50), (8, 8, 1),
                                   (31, 17, 3)])
@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
def test_odd_images_never_raise(shape, backend):
    img = np.random.default_rng(6).integers(0, 256, shape, dtype=np.uint8)
    crop = ConstrainedMultiCrop(large_size=16, small_size=8, backend=backend)
    for seed in range(5):
        np.random.seed(seed)
        results = crop(dict(img=img))
        assert [v.shape[:2] for v in results['img']] == [(16, 16)] * 2 + [(8, 8)] * 4
        # Grey stays grey (as RandomResizedCrop); channels are preserved.
        assert all(v.shape[2:] == img.shape[2:] for v in results['img'])
        _assert_inside(results['crop_boxes'], *shape[:2])


def test_two_crop_mode_is_moco_v2():
    results = ConstrainedMultiCrop(num_small=0, large_size=16)(
        dict(img=np.zeros((50, 60, 3), np.uint8)))
    assert len(results['img']) == 2 and results['crop_boxes'].shape == (2, 4)
    assert results['num_crop_fallbacks'] == 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_large=1), 'num_large >= 2'),
    (dict(min_overlap=1.5), 'min_overlap'),
    (dict(overlap_area='key'), 'overlap_area'),
    (dict(max_tries=0), 'max_tries'),
    (dict(small_scale=(0.2, 0.1)), 'small_scale'),
    (dict(large_size=0), 'large_size'),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConstrainedMultiCrop(**kwargs)
