"""VOC07 linear-SVM classification benchmark on frozen features.

Follows the benchmark of `Goyal et al., Scaling and Benchmarking Self-Supervised Visual
Representation Learning, ICCV 2019 <https://arxiv.org/abs/1905.01235>`_, which the kNN-MoCo
paper reports as "VOC SVM": L2-normalised global-pooled features, one linear SVM per class
(scikit-learn :class:`~sklearn.svm.LinearSVC`, squared hinge, L2, positive class weight 2), the
cost ``C`` of each class chosen by 3-fold cross-validated AP on the training split (VOC07
``trainval``), refitted on the whole training split and scored by AP on the test split.
Difficult-only labels are negatives for training and are ignored in AP.
"""
import time
import warnings
from typing import Optional, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from .average_precision import voc_average_precision
from .linear_probe import progress_line, summarise_class_aps

__all__ = ['DEFAULT_SVM_COSTS', 'fit_voc_svm', 'voc_svm_benchmark']

#: Cost sweep. Goyal et al. sweep 1e-7 ... 1e2 decades; on L2-normalised features the costs
#: below 1e-4 never win, so the default starts there.
DEFAULT_SVM_COSTS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def fit_voc_svm(x: np.ndarray, y: np.ndarray, cost: float,
                max_iter: int = 2000) -> LinearSVC:
    """One binary SVM with the benchmark's settings.

    Args:
        x (np.ndarray): ``(N, D)`` L2-normalised features.
        y (np.ndarray): ``(N,)`` bool targets.
        cost (float): SVM cost ``C``.
        max_iter (int): Solver iterations. Defaults to 2000.
    """
    svm = LinearSVC(
        C=cost,
        class_weight={1: 2, 0: 1},
        penalty='l2',
        loss='squared_hinge',
        dual=True,
        intercept_scaling=1.0,
        tol=1e-4,
        max_iter=max_iter)
    return svm.fit(x, np.asarray(y).astype(int))


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
        ``per_class`` entries with ``best_cost``, ``cv_ap`` (per cost) and test APs.
    """
    train_x = normalize(np.asarray(train_x, dtype=np.float64))
    test_x = normalize(np.asarray(test_x, dtype=np.float64))
    train_targets = np.asarray(train_targets, dtype=bool)
    test_targets = np.asarray(test_targets, dtype=bool)
    per_class, not_converged = [], 0
    num_classes, start = train_targets.shape[1], time.perf_counter()
    for c in range(num_classes):
        y = train_targets[:, c]
        entry = dict(num_train_positives=int(y.sum()))
        if y.all() or not y.any():
            entry.update(ap_11point=None, ap_area=None, best_cost=None,
                         note='train split has only one class value')
            per_class.append(entry)
            progress_line(progress, c + 1, num_classes, 'VOC SVM class',
                          'skipped, the train split has only one label value', start)
            continue
        folds = min(num_folds, int(y.sum()), int((~y).sum()))
        best_cost, cv_ap = 1.0, None
        if folds >= 2:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            cv_ap = []
            for cost in costs:
                aps = []
                for fit_idx, hold_idx in splitter.split(train_x, y):
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter('always', ConvergenceWarning)
                        svm = fit_voc_svm(train_x[fit_idx], y[fit_idx], cost,
                                          max_iter)
                    not_converged += bool(caught)
                    aps.append(
                        voc_average_precision(
                            svm.decision_function(train_x[hold_idx]),
                            y[hold_idx],
                            method=ap_method))
                cv_ap.append(float(np.nanmean(aps)))
            best_cost = float(costs[int(np.nanargmax(cv_ap))])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', ConvergenceWarning)
            svm = fit_voc_svm(train_x, y, best_cost, max_iter)
        not_converged += bool(caught)
        scores = svm.decision_function(test_x)
        ignore = None if test_difficult is None else np.asarray(
            test_difficult, dtype=bool)[:, c]
        entry.update(
            best_cost=best_cost,
            cv_folds=folds if folds >= 2 else 0,
            cv_ap=cv_ap,
            ap_11point=voc_average_precision(scores, test_targets[:, c],
                                             ignore, '11point'),
            ap_area=voc_average_precision(scores, test_targets[:, c], ignore,
                                          'area'))
        per_class.append(entry)
        cv = f', {folds}-fold CV' if cv_ap is not None else ', no CV (too few positives)'
        progress_line(progress, c + 1, num_classes, 'VOC SVM class',
                      f'cost={best_cost:g}{cv}, test AP ({ap_method}) '
                      f'{entry[f"ap_{ap_method}"] * 100:.2f}', start)
    return summarise_class_aps(
        per_class,
        ap_method,
        costs=[float(c) for c in costs],
        not_converged=not_converged)
