"""``voc_svm.py --protocol release``: the paper release's VOC07 SVM protocol (fixed C = 0.5,
class weight {1: 2}, features / (norm + 1e-5), difficult-only images as negatives in training
and in the test AP), checked against an independent scikit-learn ``LinearSVC`` computation with
the AP written out as the release's metric computes it."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from revisit_ssl.evaluation import voc_svm_benchmark, voc_svm_release

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'knn_moco_demo.py')


def release_style_ap(targets, scores):
    """All-point AP: sort by score, cumulative precision / recall, monotone precision
    envelope, sum of recall steps times precision."""
    order = np.argsort(-scores, kind='stable')
    tp = targets[order].astype(float)
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    recall = np.cumsum(tp) / tp.sum()
    mrec = np.concatenate([[0], recall, [1]])
    mpre = np.concatenate([[0], precision, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    steps = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def toy(seed, n, dim=10, num_classes=3):
    rng = np.random.default_rng(seed)
    targets = rng.random((n, num_classes)) < 0.4
    x = rng.standard_normal((n, dim)) + 1.2 * targets @ rng.standard_normal(
        (num_classes, dim))
    difficult = (rng.random((n, num_classes)) < 0.15) & ~targets
    return x * rng.uniform(0.5, 3, (n, 1)), targets, difficult


def test_release_protocol_matches_independent_linear_svc():
    train_x, train_t, _ = toy(0, 60)
    test_x, test_t, test_d = toy(1, 40)
    out = voc_svm_release(train_x, train_t, test_x, test_t, progress=False)

    def norm(x):
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)

    aps = []
    for c in range(train_t.shape[1]):
        labels = np.where(train_t[:, c], 1, -1)  # the release's +-1 labels
        svm = LinearSVC(C=0.5, class_weight={1: 2, -1: 1}, intercept_scaling=1.0,
                        penalty='l2', loss='squared_hinge', tol=1e-4, dual=True,
                        max_iter=2000).fit(norm(train_x), labels)
        scores = svm.decision_function(norm(test_x))
        aps.append(release_style_ap(test_t[:, c], scores))  # difficult = negative
        entry = out['per_class'][c]
        assert entry['best_cost'] == 0.5
        assert entry['ap_area'] == pytest.approx(aps[-1], abs=1e-9)
    assert out['mAP'] == pytest.approx(np.mean(aps) * 100, abs=1e-7)
    assert out['protocol'] == 'release' and out['ap_method'] == 'area'
    # the cross-validated protocol ignores the difficult images in the AP: given one cost
    # and the devkit's rule, its per-class AP is the one computed without them
    cv = voc_svm_benchmark(train_x, train_t, test_x, test_t, test_d, costs=[0.5],
                           progress=False)
    for c in range(train_t.shape[1]):
        keep = ~test_d[:, c]
        labels = np.where(train_t[:, c], 1, -1)
        svm = LinearSVC(C=0.5, class_weight={1: 2, -1: 1}, tol=1e-4,
                        max_iter=2000).fit(
                            train_x / np.linalg.norm(train_x, axis=1, keepdims=True),
                            labels)
        scores = svm.decision_function(
            test_x / np.linalg.norm(test_x, axis=1, keepdims=True))
        assert cv['per_class'][c]['ap_area'] == pytest.approx(
            release_style_ap(test_t[keep, c], scores[keep]), abs=1e-6)


def test_difficult_images_lower_the_release_ap():
    """A difficult-only image scored above every positive: a false positive for the release,
    ignored by the devkit rule."""
    train_x, train_t, _ = toy(2, 60, num_classes=1)
    test_x, test_t, _ = toy(3, 30, num_classes=1)
    test_t[:, 0] = False
    test_t[:10, 0] = True
    difficult = np.zeros_like(test_t)
    difficult[10, 0] = True
    # make image 10 look like the most positive one
    w = np.linalg.lstsq(train_x, np.where(train_t[:, 0], 1.0, -1.0), rcond=None)[0]
    test_x[10] = 50 * w
    release = voc_svm_release(train_x, train_t, test_x, test_t, progress=False)
    devkit = voc_svm_benchmark(train_x, train_t, test_x, test_t, difficult,
                               costs=[0.5], progress=False)
    assert release['mAP'] < devkit['mAP']


def test_voc_svm_tool_release_protocol(tmp_path, capsys):
    from revisit_ssl.utils.demo_data import make_demo_data
    make_demo_data(str(tmp_path), formats=('voc', ), num_train=24, num_val=12,
                   seed=1)
    voc_root = osp.join(tmp_path, 'VOCdevkit', 'VOC2012')
    spec = importlib.util.spec_from_file_location(
        '_voc_svm_tool', osp.join(ROOT, 'tools', 'analysis', 'voc_svm.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main([
        CONFIG, 'random', '--voc-root', voc_root, '--train-split', 'train',
        '--test-split', 'val', '--img-size', '32', '--protocol', 'release',
        '--num-workers', '0', '--no-progress', '--out',
        str(tmp_path / 'svm.json')
    ])
    assert result['protocol'] == 'release' and result['costs'] == [0.5]
    evaluated = [e for e in result['per_class'] if e['ap_area'] is not None]
    assert evaluated and all(e['best_cost'] == 0.5 for e in evaluated)
    assert 'release protocol' in capsys.readouterr().out
