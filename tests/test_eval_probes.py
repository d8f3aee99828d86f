"""VOC average precision, the logistic-regression probe and the VOC07 SVM benchmark."""
import numpy as np
import pytest

from revisit_ssl.evaluation import (holdout_split, l2_strength_grid,
                                    logistic_probe, voc_average_precision,
                                    voc_logistic_probe,
                                    voc_mean_average_precision,
                                    voc_svm_benchmark)


# ----------------------------------------------------------------------------- AP
def test_ap_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    targets = np.array([1, 0, 1, 0])
    # ranked: P@1 = 1 (R .5), P@2 = .5, P@3 = 2/3 (R 1), P@4 = .5
    # 11-point: recall thresholds 0 .. .5 reach precision 1, .6 .. 1 reach 2/3
    assert voc_average_precision(scores, targets,
                                 method='11point') == pytest.approx(
                                     (6 * 1 + 5 * 2 / 3) / 11)
    # area: .5 * 1 + .5 * 2/3
    assert voc_average_precision(scores, targets,
                                 method='area') == pytest.approx(5 / 6)
    # a perfect ranking is 1 either way; no positive is undefined
    assert voc_average_precision(scores, [1, 1, 0, 0], method='11point') == 1
    assert np.isnan(voc_average_precision(scores, [0, 0, 0, 0]))


def test_ap_ignores_difficult_samples():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    targets = np.array([1, 0, 1, 0])
    # dropping the false positive at rank 2 makes the ranking perfect
    ignore = np.array([False, True, False, False])
    assert voc_average_precision(scores, targets, ignore) == 1.0


def _devkit_ap(scores, targets, method):
    """The VOC devkit's loops (VOCevalcls / voc_eval.py), per sorted sample."""
    order = np.argsort(-scores, kind='stable')
    tp = targets[order].astype(float)
    fp = 1 - tp
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / targets.sum()
    prec = tp / (tp + fp)
    if method == '11point':
        return np.mean([
            prec[rec >= t].max() if (rec >= t).any() else 0
            for t in np.arange(0, 1.1, 0.1)
        ])
    mrec = np.concatenate(([0.], rec, [1.]))
    mpre = np.concatenate(([0.], prec, [0.]))
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


@pytest.mark.parametrize('seed', range(25))
def test_ap_matches_devkit_on_random_rankings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    targets = rng.random(n) < rng.uniform(0.1, 0.8)
    targets[rng.integers(n)] = True
    scores = rng.standard_normal(n) + targets * rng.uniform(0, 2)
    for method in ('11point', 'area'):
        assert voc_average_precision(scores, targets,
                                     method=method) == pytest.approx(
                                         _devkit_ap(scores, targets, method))


def test_mean_ap_skips_classes_without_positives():
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.05, 0.4], [0.1, 0.9, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]], bool)
    out = voc_mean_average_precision(scores, targets, method='area')
    # class 0: ranks its positive first (AP 1); class 1: positives at ranks 1 and 3 -> .5 +
    # .5 * 2/3; class 2 has no positive and is left out
    assert out['ap'][0] == 1.0
    assert out['ap'][1] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert np.isnan(out['ap'][2])
    assert out['mAP'] == pytest.approx((1 + 0.5 + 1 / 3) / 2)


def test_ap_method_is_checked():
    with pytest.raises(ValueError, match='11point'):
        voc_average_precision([1.0], [1], method='voc12')


# --------------------------------------------------------------------- linear probe
def _blobs(seed, num_classes=4, per_class=30, dim=20, spread=0.5):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal(
        (num_classes, dim)) * 5
    y = np.repeat(np.arange(num_classes), per_class)
    return centres[y] + spread * rng.standard_normal((len(y), dim)), y


def test_l2_grid_is_the_papers():
    grid = l2_strength_grid()
    assert len(grid) == 45
    assert grid[0] == pytest.approx(1e5) and grid[-1] == pytest.approx(1e-5)
    np.testing.assert_allclose(np.diff(np.log10(grid)), -10 / 44)


def test_holdout_is_stratified_and_disjoint():
    y = np.repeat(np.arange(5), 10)
    fit, hold = holdout_split(len(y), y, 0.2, seed=3)
    assert set(fit).isdisjoint(hold) and len(fit) + len(hold) == len(y)
    assert np.bincount(y[hold]).tolist() == [2] * 5


def test_logistic_probe_separable_gaussians_100_percent():
    train_x, train_y = _blobs(0)
    test_x, test_y = _blobs(1)
    out = logistic_probe(train_x, train_y, test_x, test_y,
                         strengths=l2_strength_grid(9))
    assert out['top1'] == 100.0
    assert out['selection'] == 'holdout of train'
    assert out['num_fit'] == len(train_y)
    assert len(out['val_top1']) == 9
    # ties are broken towards the strongest regularisation that reaches the best accuracy
    best = max(out['val_top1'])
    assert out['best_l2'] == out['l2_grid'][out['val_top1'].index(best)]


def test_logistic_probe_with_validation_split_fits_on_train_plus_val():
    train_x, train_y = _blobs(0)
    val_x, val_y = _blobs(2, per_class=5)
    test_x, test_y = _blobs(1)
    out = logistic_probe(train_x, train_y, test_x, test_y, val_x, val_y,
                         strengths=l2_strength_grid(5))
    assert out['selection'] == 'validation split'
    assert out['num_fit'] == len(train_y) + len(val_y)
    assert out['top1'] == 100.0


def test_logistic_probe_picks_strength_on_validation():
    # noisy labels: the sweep must report different validation accuracies per strength
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 40))
    y = (x[:, 0] + 0.8 * rng.standard_normal(120) > 0).astype(int)
    out = logistic_probe(x[:80], y[:80], x[80:], y[80:],
                         strengths=l2_strength_grid(9))
    assert len(set(out['val_top1'])) > 1
    assert out['best_l2'] in out['l2_grid']
    assert 50.0 < out['top1'] <= 100.0


def _multilabel(seed, n=60, num_classes=3, dim=12):
    """Class c present iff feature c is positive: linearly separable per class."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    x[:, :num_classes] += np.sign(x[:, :num_classes]) * 2  # margin around 0
    return x, x[:, :num_classes] > 0


def test_voc_logistic_probe_separable_gives_full_map():
    train_x, train_t = _multilabel(0)
    test_x, test_t = _multilabel(1)
    out = voc_logistic_probe(train_x, train_t, test_x, test_t,
                             strengths=l2_strength_grid(5))
    assert out['mAP'] == pytest.approx(100.0)
    assert out['mAP_11point'] == pytest.approx(100.0)
    assert all(e['selected_on_holdout'] for e in out['per_class'])


# ------------------------------------------------------------------------------ SVM
def test_voc_svm_separable_gives_full_map_and_picks_a_cost():
    train_x, train_t = _multilabel(0)
    test_x, test_t = _multilabel(1)
    out = voc_svm_benchmark(train_x, train_t, test_x, test_t,
                            costs=(0.01, 1.0, 100.0))
    assert out['mAP'] == pytest.approx(100.0)
    assert out['ap_method'] == 'area'
    for entry in out['per_class']:
        assert entry['best_cost'] in (0.01, 1.0, 100.0)
        assert len(entry['cv_ap']) == 3 and entry['cv_folds'] == 3


def test_voc_svm_difficult_and_degenerate_classes():
    train_x, train_t = _multilabel(0)
    test_x, test_t = _multilabel(1)
    train_t = np.concatenate([train_t, np.zeros((len(train_t), 1), bool)], 1)
    test_t = np.concatenate([test_t, np.zeros((len(test_t), 1), bool)], 1)
    # flip class 0 of one test negative to a wrongly-scored "positive", marked difficult
    neg = int(np.nonzero(~test_t[:, 0])[0][0])
    test_t[neg, 0] = True
    difficult = np.zeros_like(test_t)
    difficult[neg, 0] = True
    out = voc_svm_benchmark(train_x, train_t, test_x, test_t, difficult,
                            costs=(1.0, ))
    assert out['per_class'][0]['ap_area'] == pytest.approx(1.0)  # ignored
    # a class without train positives has no AP and does not enter the mean
    assert out['per_class'][3]['ap_area'] is None
    assert 'only one class value' in out['per_class'][3]['note']
    assert out['mAP'] == pytest.approx(100.0)
    without = voc_svm_benchmark(train_x, train_t, test_x, test_t, None,
                                costs=(1.0, ))
    assert without['per_class'][0]['ap_area'] < 1.0  # counted, it hurts
