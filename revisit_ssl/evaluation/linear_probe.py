"""Linear probes on frozen features: multinomial logistic regression, or one binary
classifier per class for multi-label data (VOC07).

This is the protocol the kNN-MoCo paper uses for its small transfer datasets (after
`Kornblith et al., Do Better ImageNet Models Transfer Better?, CVPR 2019
<https://arxiv.org/abs/1805.08974>`_): features of the frozen backbone without augmentation,
a logistic-regression classifier fitted with L-BFGS, and the L2 regularisation strength chosen
on a validation split among 45 log-spaced values in ``[1e-5, 1e5]``. The classifier is
refitted on all labelled training data with the chosen strength and scored once on the test
split. Fitting is scikit-learn's :class:`~sklearn.linear_model.LogisticRegression`.

The regularisation strength ``lambda`` here is scikit-learn's ``1 / C``: the objective is
``sum_i loss_i + lambda / 2 * ||W||^2``. Features are standardised (zero mean, unit variance,
statistics of the fitting set) first, which L-BFGS needs to converge in a few hundred steps.
"""
import sys
import time
from typing import Optional, Sequence, Tuple

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .average_precision import voc_average_precision
from .convergence import fit_counting_unconverged

__all__ = [
    'l2_strength_grid', 'holdout_split', 'select_l2_strength',
    'logistic_probe', 'voc_logistic_probe', 'class_test_aps',
    'summarise_class_aps', 'progress_line', 'export_probe'
]


def progress_line(enabled: bool, step: int, total: int, what: str, text: str,
                  start: float) -> None:
    """One line ``<what> <step>/<total>: <text> (<seconds since start> s)`` on stderr.

    The sweeps fit tens to hundreds of classifiers without output for minutes; a line per
    step (not a redrawn bar) also stays readable in a log file.

    Args:
        enabled (bool): False prints nothing.
        step (int): 1-based step number.
        total (int): Number of steps.
        what (str): Name of the loop, e.g. ``'L2 sweep'``.
        text (str): Result of the step.
        start (float): ``time.perf_counter()`` when the loop started.
    """
    if enabled:
        print(f'{what} {step}/{total}: {text} ({time.perf_counter() - start:.1f} s)',
              file=sys.stderr, flush=True)


def l2_strength_grid(num: int = 45,
                     low: float = 1e-5,
                     high: float = 1e5) -> np.ndarray:
    """``num`` log-spaced L2 strengths in ``[low, high]``, strongest first.

    Strongest first, because each fit of the sweep starts from the previous solution
    (``warm_start``) and the heavily regularised solutions are the cheap ones.
    """
    if num < 1 or not 0 < low <= high:
        raise ValueError(f'bad L2 grid: num={num}, low={low}, high={high}')
    return np.logspace(np.log10(high), np.log10(low), num)


def holdout_split(num_samples: int,
                  labels: Optional[np.ndarray] = None,
                  fraction: float = 0.2,
                  seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, holdout)`` of a random split, stratified by ``labels`` when every class
    has at least two samples.

    Args:
        num_samples (int): Number of samples.
        labels (np.ndarray, optional): ``(N,)`` single labels to stratify by.
        fraction (float): Share of samples held out. Defaults to 0.2.
        seed (int): Random seed. Defaults to 0.
    """
    if not 0 < fraction < 1:
        raise ValueError(f'holdout fraction must be in (0, 1), got {fraction}')
    index = np.arange(num_samples)
    stratify = None
    test_size = max(1, int(round(fraction * num_samples)))
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2:
            stratify = labels
            # a stratified split needs at least one held-out sample per class
            test_size = min(max(test_size, len(counts)),
                            num_samples - len(counts))
    if test_size < 1 or test_size >= num_samples:
        raise ValueError(f'cannot hold out a validation split from '
                         f'{num_samples} samples; pass a separate validation '
                         'split')
    fit, hold = train_test_split(
        index, test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(hold)


def _scaled(fit_x: np.ndarray, *others: np.ndarray) -> list:
    scaler = StandardScaler().fit(fit_x)
    return [scaler.transform(fit_x)] + [scaler.transform(o) for o in others]


def select_l2_strength(fit_x: np.ndarray,
                       fit_y: np.ndarray,
                       val_x: np.ndarray,
                       val_y: np.ndarray,
                       strengths: Sequence[float],
                       max_iter: int = 1000,
                       progress: bool = True) -> dict:
    """Fit one multinomial probe per L2 strength; pick the best validation top-1.

    Args:
        fit_x (np.ndarray): ``(N, D)`` fitting features.
        fit_y (np.ndarray): ``(N,)`` fitting labels.
        val_x (np.ndarray): ``(M, D)`` validation features.
        val_y (np.ndarray): ``(M,)`` validation labels.
        strengths (Sequence[float]): Candidate ``lambda`` values, strongest first.
        max_iter (int): L-BFGS iterations per fit. Defaults to 1000.
        progress (bool): Print one ``L2 sweep i/n`` line per strength to stderr. Defaults
            to True.

    Returns:
        dict: ``best_l2`` (the strongest among equally good strengths), ``val_top1`` (list, %,
        aligned with ``strengths``) and ``not_converged`` (number of fits that hit
        ``max_iter``).
    """
    fit_x, val_x = _scaled(fit_x, val_x)
    clf = LogisticRegression(max_iter=max_iter, warm_start=True)
    accs, not_converged = [], 0
    start = time.perf_counter()
    for step, lam in enumerate(strengths, 1):
        not_converged += fit_counting_unconverged(
            clf.set_params(C=1.0 / lam), fit_x, fit_y)
        accs.append(float((clf.predict(val_x) == val_y).mean() * 100))
        progress_line(progress, step, len(strengths), 'L2 sweep',
                      f'lambda={lam:.3g}, val top-1 {accs[-1]:.2f}%', start)
    best = int(np.argmax(accs))  # first maximum = strongest regularisation
    return dict(
        best_l2=float(strengths[best]),
        val_top1=accs,
        not_converged=not_converged)


def logistic_probe(train_x: np.ndarray,
                   train_y: np.ndarray,
                   test_x: np.ndarray,
                   test_y: np.ndarray,
                   val_x: Optional[np.ndarray] = None,
                   val_y: Optional[np.ndarray] = None,
                   strengths: Optional[Sequence[float]] = None,
                   holdout_fraction: float = 0.2,
                   max_iter: int = 1000,
                   seed: int = 0,
                   progress: bool = True,
                   keep_model: bool = False) -> dict:
    """Multinomial logistic-regression probe: choose ``lambda``, refit, report test top-1.

    Args:
        train_x (np.ndarray): ``(N, D)`` training features.
        train_y (np.ndarray): ``(N,)`` training labels.
        test_x (np.ndarray): ``(M, D)`` test features.
        test_y (np.ndarray): ``(M,)`` test labels.
        val_x (np.ndarray, optional): Features of a separate validation split. Without one,
            ``holdout_fraction`` of the training split (stratified) chooses ``lambda``.
        val_y (np.ndarray, optional): Its labels.
        strengths (Sequence[float], optional): Candidate ``lambda`` values; defaults to
            :func:`l2_strength_grid` (45 values in ``[1e-5, 1e5]``).
        holdout_fraction (float): Share of train held out without ``val_x``. Defaults to 0.2.
        max_iter (int): L-BFGS iterations per fit. Defaults to 1000.
        seed (int): Seed of the holdout split. Defaults to 0.
        progress (bool): Print one line per L2 strength of the sweep to stderr. Defaults
            to True.
        keep_model (bool): Also return the final fit as ``fitted`` = ``(StandardScaler,
            LogisticRegression)`` (for :func:`export_probe`). Defaults to False.

    Returns:
        dict: ``top1`` (test top-1 in %), ``mean_per_class_top1`` (%, the mean of the
        per-class recalls, Ericsson et al.'s metric for Pets, Flowers, Caltech and Aircraft),
        ``best_l2``, ``l2_grid``, ``val_top1`` (per grid value), ``selection`` ('validation
        split' or 'holdout of train'), ``num_fit`` (samples of the final fit),
        ``not_converged`` and ``predictions``.
    """
    train_y = np.asarray(train_y)
    strengths = l2_strength_grid() if strengths is None else np.asarray(
        strengths, dtype=np.float64)
    if val_x is None:
        fit_idx, hold_idx = holdout_split(
            len(train_y), train_y, holdout_fraction, seed)
        sweep = select_l2_strength(train_x[fit_idx], train_y[fit_idx],
                                   train_x[hold_idx], train_y[hold_idx],
                                   strengths, max_iter, progress)
        final_x, final_y = train_x, train_y
        selection = 'holdout of train'
    else:
        sweep = select_l2_strength(train_x, train_y, val_x, np.asarray(val_y),
                                   strengths, max_iter, progress)
        final_x = np.concatenate([train_x, val_x])
        final_y = np.concatenate([train_y, val_y])
        selection = 'validation split'
    scaler = StandardScaler().fit(final_x)
    final_x, test_x = scaler.transform(final_x), scaler.transform(test_x)
    clf = LogisticRegression(C=1.0 / sweep['best_l2'], max_iter=max_iter)
    not_converged = sweep['not_converged'] + fit_counting_unconverged(
        clf, final_x, final_y)
    pred = clf.predict(test_x)
    test_y = np.asarray(test_y)
    out = dict(
        top1=float((pred == test_y).mean() * 100),
        mean_per_class_top1=float(
            np.mean([(pred[test_y == c] == c).mean()
                     for c in np.unique(test_y)]) * 100),
        best_l2=sweep['best_l2'],
        l2_grid=[float(s) for s in strengths],
        val_top1=sweep['val_top1'],
        selection=selection,
        num_fit=int(len(final_y)),
        not_converged=int(not_converged),
        predictions=pred.tolist())
    if keep_model:
        out['fitted'] = (scaler, clf)
    return out


def export_probe(scaler: StandardScaler, clf: LogisticRegression,
                 classes: Sequence[str], **meta) -> dict:
    """The fitted probe as one affine map on the extracted features, for saving.

    The probe standardises the features, then applies the classifier:
    ``logits = W_s (x - mu) / sigma + b_s``. Folding the standardisation in gives
    ``logits = W x + b`` with ``W = W_s / sigma`` and ``b = b_s - W mu``, which is what a
    class activation map needs (``W`` applied to every position of the feature map, Zhou et
    al. 2016). A binary probe (one scikit-learn row) becomes two rows, class 0 with zero
    weights, so ``argmax`` and the per-class maps work alike.

    Args:
        scaler (StandardScaler): The fitted standardisation.
        clf (LogisticRegression): The fitted classifier.
        classes (Sequence[str]): Class names, index = label.
        **meta: Stored alongside (feature settings, config, checkpoint, pipeline).

    Returns:
        dict: ``weight`` ``(C, D)`` and ``bias`` ``(C,)`` float32 tensors, ``classes``,
        ``scaler_mean``, ``scaler_scale``, ``coef``, ``intercept`` (the unfolded parts) and
        ``meta``; plain types only, so ``torch.load(weights_only=True)`` reads it.
    """
    import torch
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # scikit-learn's binary case: one logit, class 1 vs 0
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    if coef.shape[0] != len(classes):
        raise ValueError(f'the probe has {coef.shape[0]} rows but '
                         f'{len(classes)} classes')
    weight = coef / scaler.scale_[None, :]
    bias = intercept - weight @ scaler.mean_
    return dict(
        weight=torch.from_numpy(weight).float(),
        bias=torch.from_numpy(bias).float(),
        classes=[str(c) for c in classes],
        scaler_mean=torch.from_numpy(scaler.mean_).float(),
        scaler_scale=torch.from_numpy(scaler.scale_).float(),
        coef=torch.from_numpy(coef).float(),
        intercept=torch.from_numpy(intercept).float(),
        meta=dict(meta))


def voc_logistic_probe(train_x: np.ndarray,
                       train_targets: np.ndarray,
                       test_x: np.ndarray,
                       test_targets: np.ndarray,
                       test_difficult: Optional[np.ndarray] = None,
                       strengths: Optional[Sequence[float]] = None,
                       holdout_fraction: float = 0.2,
                       ap_method: str = 'area',
                       max_iter: int = 1000,
                       seed: int = 0,
                       progress: bool = True,
                       val_x: Optional[np.ndarray] = None,
                       val_targets: Optional[np.ndarray] = None) -> dict:
    """One binary logistic-regression probe per class (VOC07 classification), scored by AP.

    Per class, ``lambda`` is the grid value with the best AP on a random holdout of the
    training split (or on ``val_x`` when given: Ericsson et al.'s VOC07 protocol, fit on
    ``train``, choose on ``val``, refit on ``trainval`` = train + val); the probe is refitted
    on the whole training split (plus the validation split) and its decision values
    on the test split give the class's AP. Difficult-only labels count as negatives in
    training and are left out of the test AP (as in the VOC devkit).

    Args:
        train_x (np.ndarray): ``(N, D)`` training features.
        train_targets (np.ndarray): ``(N, C)`` bool, class present (not only as difficult).
        test_x (np.ndarray): ``(M, D)`` test features.
        test_targets (np.ndarray): ``(M, C)`` bool.
        test_difficult (np.ndarray, optional): ``(M, C)`` bool, class present only as
            difficult; ignored for that class's AP.
        strengths (Sequence[float], optional): Candidate ``lambda``; defaults to the 45-value
            grid.
        holdout_fraction (float): Share of train used to choose ``lambda``. Defaults to 0.2.
        ap_method (str): ``'11point'`` or ``'area'`` (see :mod:`.average_precision`); both are
            reported, this one picks ``lambda`` and is the headline ``mAP``. Defaults to 'area'.
        max_iter (int): L-BFGS iterations per fit. Defaults to 1000.
        seed (int): Seed of the holdout split. Defaults to 0.
        progress (bool): Print one ``VOC07 probe class c/C`` line per class (its L2 sweep and
            final fit) to stderr. Defaults to True.
        val_x (np.ndarray, optional): ``(V, D)`` features of a separate validation split
            that chooses ``lambda``; the final fits then use train + val.
        val_targets (np.ndarray, optional): ``(V, C)`` bool, its targets.

    Returns:
        dict: ``mAP`` (headline, in %), ``mAP_11point`` and ``mAP_area`` (%), ``ap_method``,
        ``selection`` and ``per_class`` (list of dicts with ``best_l2``, ``ap_11point``,
        ``ap_area``, ``selected_on_holdout``).
    """
    train_targets = np.asarray(train_targets, dtype=bool)
    test_targets = np.asarray(test_targets, dtype=bool)
    strengths = l2_strength_grid() if strengths is None else np.asarray(
        strengths, dtype=np.float64)
    if val_x is None:
        fit_idx, hold_idx = holdout_split(
            len(train_targets), None, holdout_fraction, seed)
        fit_x, hold_x = _scaled(train_x[fit_idx], train_x[hold_idx])
        fit_t, hold_t = train_targets[fit_idx], train_targets[hold_idx]
        selection = 'holdout of train'
    else:
        if val_targets is None:
            raise ValueError('val_x needs val_targets')
        fit_x, hold_x = _scaled(train_x, val_x)
        fit_t, hold_t = train_targets, np.asarray(val_targets, dtype=bool)
        train_x = np.concatenate([train_x, val_x])
        train_targets = np.concatenate([train_targets, hold_t])
        selection = 'validation split'
    all_x, test_x = _scaled(train_x, test_x)
    per_class, not_converged = [], 0
    num_classes, start = train_targets.shape[1], time.perf_counter()
    for c in range(num_classes):
        y = train_targets[:, c]
        entry = dict(num_train_positives=int(y.sum()))
        if y.all() or not y.any():
            entry.update(ap_11point=None, ap_area=None, best_l2=None,
                         note='train split has only one class value')
            per_class.append(entry)
            progress_line(progress, c + 1, num_classes, 'VOC07 probe class',
                          'skipped, the train split has only one label value', start)
            continue
        y_fit, y_hold = fit_t[:, c], hold_t[:, c]
        best_l2, selected = 1.0, False  # middle of the grid when no holdout choice
        if y_fit.any() and not y_fit.all() and y_hold.any():
            aps = []
            clf = LogisticRegression(max_iter=max_iter, warm_start=True)
            for lam in strengths:
                not_converged += fit_counting_unconverged(
                    clf.set_params(C=1.0 / lam), fit_x, y_fit)
                aps.append(
                    voc_average_precision(
                        clf.decision_function(hold_x), y_hold,
                        method=ap_method))
            best_l2, selected = float(strengths[int(np.nanargmax(aps))]), True
        clf = LogisticRegression(C=1.0 / best_l2, max_iter=max_iter)
        not_converged += fit_counting_unconverged(clf, all_x, y)
        entry.update(
            best_l2=best_l2,
            selected_on_holdout=selected,
            **class_test_aps(clf.decision_function(test_x), test_targets,
                             test_difficult, c))
        per_class.append(entry)
        progress_line(progress, c + 1, num_classes, 'VOC07 probe class',
                      f'best lambda={best_l2:.3g}, test AP ({ap_method}) '
                      f'{entry[f"ap_{ap_method}"] * 100:.2f}', start)
    return summarise_class_aps(per_class, ap_method, selection=selection,
                               not_converged=not_converged)


def class_test_aps(scores: np.ndarray, test_targets: np.ndarray,
                   test_difficult: Optional[np.ndarray], c: int) -> dict:
    """``ap_11point`` and ``ap_area`` of class ``c`` from its test scores, difficult-only
    labels left out."""
    targets = np.asarray(test_targets, dtype=bool)[:, c]
    ignore = None if test_difficult is None else np.asarray(
        test_difficult, dtype=bool)[:, c]
    return {
        f'ap_{method}': voc_average_precision(scores, targets, ignore, method)
        for method in ('11point', 'area')
    }


def summarise_class_aps(per_class: list, ap_method: str, **extra) -> dict:
    """Mean of the per-class APs (in %) over classes with a defined AP."""
    out = dict(ap_method=ap_method)
    for entry in per_class:  # NaN (no test positive) is not valid JSON: store None
        for method in ('11point', 'area'):
            value = entry.get(f'ap_{method}')
            if value is not None and np.isnan(value):
                entry[f'ap_{method}'] = None
                entry['note'] = 'no positive in the test split'
    for method in ('11point', 'area'):
        vals = [
            e[f'ap_{method}'] for e in per_class
            if e.get(f'ap_{method}') is not None
        ]
        if not vals:
            raise ValueError('no class has both positives and negatives in '
                             'train and a positive in test; mAP is undefined')
        out[f'mAP_{method}'] = float(np.mean(vals) * 100)
    out['mAP'] = out[f'mAP_{ap_method}']
    out['per_class'] = per_class
    out.update(extra)
    return out
