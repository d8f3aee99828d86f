"""VOC07 linear-SVM classification benchmark on frozen features.

Follows the benchmark of `Goyal et al., Scaling and Benchmarking Self-Supervised Visual
Representation Learning, ICCV 2019 <https://arxiv.org/abs/1905.01235>`_, which the kNN-MoCo
paper reports as "VOC SVM": L2-normalised global-pooled features, one linear SVM per class
(scikit-learn :class:`~sklearn.svm.LinearSVC`, squared hinge, L2, positive class weight 2), the
cost ``C`` of each class chosen by 3-fold cross-validated AP on the training split (VOC07
``trainval``, scikit-learn's :class:`~sklearn.model_selection.GridSearchCV`), refitted on the
whole training split and scored by AP on the test split. Difficult-only labels are negatives
for training and are ignored in AP.

:func:`voc_svm_release` is the protocol of the paper's release
(wvangansbeke/Revisiting-Contrastive-SSL, ``evaluation/voc_svm``), which produced its "VOC SVM"
numbers: the same SVM settings with a fixed cost ``C = 0.5`` (no cross-validation), features
divided by ``(L2 norm + 1e-5)``, and difficult-only labels as negatives both in training and
in the test AP (all-point "area" AP).
"""
import time
from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from .average_precision import voc_average_precision
from .convergence import fit_counting_unconverged
from .linear_probe import class_test_aps, progress_line, summarise_class_aps

__all__ = [
    'DEFAULT_SVM_COSTS', 'RELEASE_SVM_COST', 'SVM_PROTOCOLS',
    'voc_svm_estimator', 'fit_voc_svm', 'voc_svm_benchmark',
    'voc_svm_release'
]

#: Cost sweep. Goyal et al. sweep 1e-7 ... 1e2 decades; on L2-normalised features the costs
#: below 1e-4 never win, so the default starts there.
DEFAULT_SVM_COSTS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)

#: The release's fixed SVM cost.
RELEASE_SVM_COST = 0.5

#: ``voc_svm.py --protocol`` values: Goyal et al.'s cross-validated cost, or the release's.
SVM_PROTOCOLS = ('cv', 'release')


def voc_svm_estimator(cost: float = 1.0, max_iter: int = 2000) -> LinearSVC:
    """An unfitted binary SVM with the benchmark's settings (cost ``C`` = ``cost``)."""
    return LinearSVC(
        C=cost,
        class_weight={1: 2, 0: 1},
        penalty='l2',
        loss='squared_hinge',
        dual=True,
        intercept_scaling=1.0,
        tol=1e-4,
        max_iter=max_iter)


def fit_voc_svm(x: np.ndarray, y: np.ndarray, cost: float,
                max_iter: int = 2000) -> LinearSVC:
    """One binary SVM with the benchmark's settings.

    Args:
        x (np.ndarray): ``(N, D)`` L2-normalised features.
        y (np.ndarray): ``(N,)`` bool targets.
        cost (float): SVM cost ``C``.
        max_iter (int): Solver iterations. Defaults to 2000.
    """
    return voc_svm_estimator(cost, max_iter).fit(x, np.asarray(y).astype(int))


def voc_svm_benchmark(train_x: np.ndarray,
                      train_targets: np.ndarray,
                      test_x: np.ndarray,
                      test_targets: np.ndarray,
                      test_difficult: Optional[np.ndarray] = None,
                      costs: Sequence[float] = DEFAULT_SVM_COSTS,
                      num_folds: int = 3,
                      ap_method: str = 'area',
                      seed: int = 0,
                      max_iter: int = 2000,
                      progress: bool = True) -> dict:
    """Per-class SVMs with a cross-validated cost; test mAP.

    Args:
        train_x (np.ndarray): ``(N, D)`` training features (L2-normalised here).
        train_targets (np.ndarray): ``(N, C)`` bool, class present (not only as difficult).
        test_x (np.ndarray): ``(M, D)`` test features.
        test_targets (np.ndarray): ``(M, C)`` bool.
        test_difficult (np.ndarray, optional): ``(M, C)`` bool, ignored in the class's AP.
        costs (Sequence[float]): Candidate costs. Defaults to :data:`DEFAULT_SVM_COSTS`.
        num_folds (int): Cross-validation folds; lowered to the number of positives (or
            negatives) of a rare class, and without two of each the cost is fixed to 1.0.
            Defaults to 3.
        ap_method (str): AP used for the cost choice and the headline ``mAP`` (``'area'``:
            VOC2010+ / Goyal et al.; ``'11point'``: VOC2007 devkit). Both are reported.
            Defaults to 'area'.
        seed (int): Seed of the fold split. Defaults to 0.
        max_iter (int): Solver iterations. Defaults to 2000.
        progress (bool): Print one ``VOC SVM class c/C`` line per class (its cross-validated
            cost sweep and final fit) to stderr. Defaults to True.

    Returns:
        dict: ``mAP`` (headline, %), ``mAP_11point``, ``mAP_area``, ``ap_method`` and
        ``per_class`` entries with ``best_cost``, ``cv_ap`` (mean fold AP per cost) and test
        APs.
    """
    train_x = normalize(np.asarray(train_x, dtype=np.float64))
    test_x = normalize(np.asarray(test_x, dtype=np.float64))
    train_targets = np.asarray(train_targets, dtype=bool)
    # GridSearchCV ranks by the mean fold score; the first of equal means wins, as the
    # costs' order (smallest first) prefers the stronger regularisation
    scorer = make_scorer(
        voc_average_precision,
        response_method='decision_function',
        method=ap_method)
    per_class, not_converged = [], 0
    num_classes, start = train_targets.shape[1], time.perf_counter()
    for c in range(num_classes):
        y = train_targets[:, c].astype(int)
        entry = dict(num_train_positives=int(y.sum()))
        if y.all() or not y.any():
            entry.update(ap_11point=None, ap_area=None, best_cost=None,
                         note='train split has only one class value')
            per_class.append(entry)
            progress_line(progress, c + 1, num_classes, 'VOC SVM class',
                          'skipped, the train split has only one label value', start)
            continue
        folds = min(num_folds, int(y.sum()), int((1 - y).sum()))
        if folds >= 2:
            svm = GridSearchCV(
                voc_svm_estimator(max_iter=max_iter), {'C': list(costs)},
                scoring=scorer,
                cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                error_score='raise')
        else:  # too few positives (or negatives) to cross-validate
            svm = voc_svm_estimator(1.0, max_iter)
        not_converged += fit_counting_unconverged(svm, train_x, y)
        cv = folds >= 2
        entry.update(
            best_cost=float(svm.best_params_['C']) if cv else 1.0,
            cv_folds=folds if cv else 0,
            cv_ap=svm.cv_results_['mean_test_score'].tolist() if cv else None,
            **class_test_aps(svm.decision_function(test_x), test_targets,
                             test_difficult, c))
        per_class.append(entry)
        cv_text = f', {folds}-fold CV' if cv else ', no CV (too few positives)'
        progress_line(progress, c + 1, num_classes, 'VOC SVM class',
                      f'cost={entry["best_cost"]:g}{cv_text}, test AP ({ap_method}) '
                      f'{entry[f"ap_{ap_method}"] * 100:.2f}', start)
    return summarise_class_aps(
        per_class,
        ap_method,
        costs=[float(c) for c in costs],
        not_converged=not_converged)


def voc_svm_release(train_x: np.ndarray,
                    train_targets: np.ndarray,
                    test_x: np.ndarray,
                    test_targets: np.ndarray,
                    cost: float = RELEASE_SVM_COST,
                    ap_method: str = 'area',
                    max_iter: int = 2000,
                    progress: bool = True) -> dict:
    """The paper release's VOC07 SVM protocol: one SVM per class at a fixed cost.

    Differences from :func:`voc_svm_benchmark` (read from the release's
    ``evaluation/voc_svm/main.py`` and ``metrics.py``): no cost search (``C = 0.5``); each
    feature is divided by its L2 norm plus 1e-5; an image whose only objects of a class are
    *difficult* is a negative of that class in training (as in both) **and in the test AP**
    (the VOC devkit ignores it). The SVM itself is the same (:func:`voc_svm_estimator`:
    squared hinge, L2, class weight ``{1: 2}``, tol 1e-4, intercept scaling 1). The release
    reports the all-point ("area") AP; both AP methods are returned.

    Args:
        train_x (np.ndarray): ``(N, D)`` training features (VOC07 ``trainval``).
        train_targets (np.ndarray): ``(N, C)`` bool, class present (not only as difficult).
        test_x (np.ndarray): ``(M, D)`` test features.
        test_targets (np.ndarray): ``(M, C)`` bool, same meaning; difficult-only = False.
        cost (float): SVM cost. Defaults to 0.5.
        ap_method (str): Headline AP. Defaults to 'area' (the release's).
        max_iter (int): Solver iterations. Defaults to 2000 (the release's).
        progress (bool): One ``VOC SVM class c/C`` line per class on stderr.

    Returns:
        dict: As :func:`voc_svm_benchmark` (``mAP``, ``mAP_11point``, ``mAP_area``,
        ``per_class`` with ``best_cost`` = ``cost``), plus ``protocol='release'``.
    """
    def scale(x):  # the release's normalisation, kept for exact agreement
        x = np.asarray(x, dtype=np.float64)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)

    train_x, test_x = scale(train_x), scale(test_x)
    train_targets = np.asarray(train_targets, dtype=bool)
    per_class, not_converged = [], 0
    num_classes, start = train_targets.shape[1], time.perf_counter()
    for c in range(num_classes):
        y = train_targets[:, c].astype(int)
        entry = dict(num_train_positives=int(y.sum()), best_cost=float(cost))
        if y.all() or not y.any():
            entry.update(ap_11point=None, ap_area=None,
                         note='train split has only one class value')
            per_class.append(entry)
            progress_line(progress, c + 1, num_classes, 'VOC SVM class',
                          'skipped, the train split has only one label value', start)
            continue
        svm = voc_svm_estimator(cost, max_iter)
        not_converged += fit_counting_unconverged(svm, train_x, y)
        # test_difficult=None: difficult-only images stay in the AP as negatives
        entry.update(**class_test_aps(svm.decision_function(test_x),
                                      test_targets, None, c))
        per_class.append(entry)
        progress_line(progress, c + 1, num_classes, 'VOC SVM class',
                      f'cost={cost:g} (release, fixed), test AP ({ap_method}) '
                      f'{entry[f"ap_{ap_method}"] * 100:.2f}', start)
    return summarise_class_aps(
        per_class, ap_method, protocol='release', costs=[float(cost)],
        not_converged=not_converged)
