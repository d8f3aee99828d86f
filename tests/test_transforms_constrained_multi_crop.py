"""ConstrainedMultiCrop: the overlap rule over many seeded draws, boxes, views and odd images."""
import mmcv
import numpy as np
import pytest

from revisit_ssl.datasets.transforms import OVERLAP_PRESETS, ConstrainedMultiCrop

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
    (dict(max_iou=1.0), r'max_iou.*\[0, 1\).*max_iou=None'),
    (dict(max_iou=-0.1), 'max_iou'),
    (dict(max_iou='0.3'), 'max_iou'),
    (dict(num_large=1, num_small=0, max_iou=0.3), 'max_iou.*num_large >= 2'),
    (dict(overlap_preset='official'), "overlap_preset must be one of \\['paper', 'release'\\]"),
    (dict(overlap_preset='release', min_overlap=0.3), 'drop min_overlap to use the preset'),
    (dict(overlap_preset='paper', max_tries=10), 'drop max_tries to use the preset'),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConstrainedMultiCrop(**kwargs)


# ----------------------------------------------------------------------------- presets


def _intersection(box, key) -> int:
    """Pixels of ``box`` inside ``key`` (plain Python ints, independent of the sampler)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    inter_w = max(0, min(x2, int(key[2])) - max(x1, int(key[0])))
    inter_h = max(0, min(y2, int(key[3])) - max(y1, int(key[1])))
    return inter_w * inter_h


def test_overlap_presets_set_the_rule():
    paper, release = ConstrainedMultiCrop(overlap_preset='paper'), ConstrainedMultiCrop(
        overlap_preset='release')
    assert (paper.min_overlap, paper.overlap_area, paper.max_tries) == (0.2, 'crop', 50)
    assert (release.min_overlap, release.overlap_area, release.max_tries) == (0.1, 'target',
                                                                               10)
    assert OVERLAP_PRESETS == {'paper': (0.2, 'crop', 50), 'release': (0.1, 'target', 10)}
    # A value equal to the preset's is accepted; the preset draws exactly what the three
    # arguments spelled out draw.
    spelled = ConstrainedMultiCrop(min_overlap=0.1, overlap_area='target', max_tries=10)
    same = ConstrainedMultiCrop(overlap_preset='release', min_overlap=0.1)
    for seed in range(20):
        expected = spelled.sample_boxes(480, 640, np.random.default_rng(seed))
        for crop in (release, same):
            boxes, fallbacks = crop.sample_boxes(480, 640, np.random.default_rng(seed))
            assert np.array_equal(boxes, expected[0]) and fallbacks == expected[1]
        default = ConstrainedMultiCrop().sample_boxes(480, 640, np.random.default_rng(seed))
        as_paper = paper.sample_boxes(480, 640, np.random.default_rng(seed))
        assert np.array_equal(default[0], as_paper[0]) and default[1] == as_paper[1]


@pytest.mark.parametrize('preset', ['paper', 'release'])
def test_each_preset_holds_its_invariant_over_many_draws(preset):
    """paper: small ∩ key >= 20% of the small crop's pixels; release: >= 10% of its target area.

    The target area T is not returned, but the rounded sides bound it: w = round(sqrt(T a))
    and h = round(sqrt(T / a)) give T >= (w - 1/2)(h - 1/2), so the release's rule implies
    small ∩ key >= 0.1 (w - 1/2)(h - 1/2).
    """
    crop = ConstrainedMultiCrop(overlap_preset=preset)
    rng = np.random.default_rng(10)
    below_paper_rule, typical_fallbacks, typical = 0, 0, 0
    for height, width in _image_sizes(rng, 600):
        boxes, num_fallbacks = crop.sample_boxes(height, width, rng)
        _assert_inside(boxes, height, width)
        violations = 0
        for box in boxes[2:]:
            inter = _intersection(box, boxes[KEY])
            w, h = int(box[2] - box[0]), int(box[3] - box[1])
            if preset == 'paper':
                violations += inter < 0.2 * w * h
            else:
                violations += inter < 0.1 * (w - 0.5) * (h - 0.5)
                below_paper_rule += inter < 0.2 * w * h
        # Every small crop that is not a fallback meets the preset's rule.
        assert violations <= num_fallbacks <= 4, (preset, height, width, boxes)
        if min(height, width) >= 100 and max(height, width) / min(height, width) < 2:
            typical += 4
            typical_fallbacks += num_fallbacks
    # The rule is enforced, not bypassed: photo-like images (nearly) never fall back.
    assert typical > 1000 and typical_fallbacks <= 0.005 * typical, (typical_fallbacks,
                                                                      typical)
    if preset == 'release':
        # The release's weaker rule admits crops the paper's rule rejects.
        assert below_paper_rule > 0.02 * 4 * 600, below_paper_rule


# ----------------------------------------------------------------------------- max_iou


def _iou(box_a, box_b) -> float:
    """IoU of two boxes from plain Python ints."""
    inter = _intersection(box_a, box_b)
    area_a = int((box_a[2] - box_a[0]) * (box_a[3] - box_a[1]))
    area_b = int((box_b[2] - box_b[0]) * (box_b[3] - box_b[1]))
    return inter / (area_a + area_b - inter)


@pytest.mark.parametrize('max_iou', [0.1, 0.3, 0.5])
def test_max_iou_caps_query_key_iou_over_many_draws(max_iou):
    crop = ConstrainedMultiCrop(max_iou=max_iou)  # CC with 4 small crops, 50 tries
    rng = np.random.default_rng(20)
    typical_pair_fallbacks, typical = 0, 0
    for height, width in _image_sizes(rng, 600):
        boxes, num_fallbacks = crop.sample_boxes(height, width, rng)
        _assert_inside(boxes, height, width)
        iou = _iou(boxes[0], boxes[1])
        small_violations = int(
            (_overlap_fraction(boxes[2:], boxes[KEY]) < 0.2 - 1e-12).sum())
        # A pair over the cap is the pair fallback (the first, unconstrained pair stays).
        pair_fallback = int(iou > max_iou)
        assert small_violations + pair_fallback <= num_fallbacks <= 4 + pair_fallback, (
            height, width, boxes, num_fallbacks)
        if min(height, width) >= 100 and max(height, width) / min(height, width) < 2:
            typical += 1
            typical_pair_fallbacks += pair_fallback
    # Enforced, not bypassed: the cap holds on nearly every photo-like image (at 0.1, about
    # 2.4% of unconstrained pairs pass, so 50 tries miss (0.976 ** 50) ~ 30% of the time).
    assert typical_pair_fallbacks <= {0.1: 0.45, 0.3: 0.01, 0.5: 0.002}[max_iou] * typical


def test_max_iou_counts_pair_fallbacks_and_keeps_the_first_pair():
    # Two crops of >= 90% of the image always overlap by more than 0.8 IoU.
    plain = ConstrainedMultiCrop(large_scale=(0.9, 1.0), num_small=0)
    capped = ConstrainedMultiCrop(large_scale=(0.9, 1.0), num_small=0, max_iou=0.5,
                                  max_tries=7)
    for seed in range(30):
        boxes, num_fallbacks = capped.sample_boxes(300, 400, np.random.default_rng(seed))
        assert num_fallbacks == 1
        assert _iou(boxes[0], boxes[1]) > 0.5
        expected, _ = plain.sample_boxes(300, 400, np.random.default_rng(seed))
        assert np.array_equal(boxes, expected)  # the fallback is the unconstrained draw
        results = capped(dict(img=np.zeros((300, 400, 3), np.uint8)))
        assert results['num_crop_fallbacks'] == 1


def test_max_iou_keeps_passing_pairs_and_lowers_the_iou():
    plain, capped = ConstrainedMultiCrop(), ConstrainedMultiCrop(max_iou=0.3)
    plain_ious, capped_ious, kept = [], [], 0
    for seed in range(300):
        p_boxes, p_fallbacks = plain.sample_boxes(480, 640, np.random.default_rng(seed))
        c_boxes, c_fallbacks = capped.sample_boxes(480, 640, np.random.default_rng(seed))
        plain_ious.append(_iou(p_boxes[0], p_boxes[1]))
        capped_ious.append(_iou(c_boxes[0], c_boxes[1]))
        if plain_ious[-1] <= 0.3:
            # The drawn pair passes: the same views (small crops too) as without the option.
            assert np.array_equal(p_boxes, c_boxes) and p_fallbacks == c_fallbacks
            kept += 1
    assert kept > 20
    assert max(capped_ious) <= 0.3 < max(plain_ious)
    assert np.mean(capped_ious) < np.mean(plain_ious) - 0.2
