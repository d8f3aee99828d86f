"""Average precision as the PASCAL VOC classification benchmark computes it.

Two definitions are in use and give different numbers, so every result names its method:

* ``'11point'``: the VOC2007 devkit's interpolated AP, the mean over recall thresholds
  ``0, 0.1, ..., 1`` of the highest precision reached at that recall or above.
* ``'area'``: the VOC2010+ devkit's AP, the area under the monotone (interpolated)
  precision-recall envelope over every recall step. The VOC07 SVM benchmark of
  `Goyal et al. (ICCV 2019) <https://arxiv.org/abs/1905.01235>`_, used by most self-supervised
  papers, reports this one on the VOC2007 test set.

Images where a class appears only as *difficult* are left out of that class's AP, as in the
devkit. The precision-recall points come from :func:`sklearn.metrics.precision_recall_curve`.
"""
from typing import Optional

import numpy as np
from sklearn.metrics import precision_recall_curve

__all__ = ['AP_METHODS', 'voc_average_precision', 'voc_mean_average_precision']

AP_METHODS = ('11point', 'area')


def voc_average_precision(scores: np.ndarray,
                          targets: np.ndarray,
                          ignore: Optional[np.ndarray] = None,
                          method: str = 'area') -> float:
    """Average precision of one class.

    Args:
        scores (np.ndarray): ``(N,)`` classifier scores, higher = more likely positive.
        targets (np.ndarray): ``(N,)`` bool / 0-1 ground truth.
        ignore (np.ndarray, optional): ``(N,)`` bool, samples left out (VOC "difficult").
        method (str): ``'11point'`` (VOC2007) or ``'area'`` (VOC2010+). Defaults to 'area'.

    Returns:
        float: AP in ``[0, 1]``; NaN when no (kept) sample is positive.
    """
    if method not in AP_METHODS:
        raise ValueError(f'AP method must be one of {AP_METHODS}, got '
                         f'{method!r}')
    scores = np.asarray(scores, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel().astype(bool)
    if scores.shape != targets.shape:
        raise ValueError(f'{scores.shape[0]} scores but {targets.shape[0]} '
                         'targets')
    if ignore is not None:
        keep = ~np.asarray(ignore).ravel().astype(bool)
        scores, targets = scores[keep], targets[keep]
    if not targets.any():
        return float('nan')
    precision, recall, _ = precision_recall_curve(targets, scores)
    # sklearn lists thresholds in increasing order and appends (recall 0, precision 1); drop
    # that point and walk from the highest threshold down, i.e. in increasing recall.
    precision, recall = precision[:-1][::-1], recall[:-1][::-1]
    if method == '11point':
        return float(
            np.mean([
                precision[recall >= t].max() if (recall >= t).any() else 0.0
                for t in np.linspace(0, 1, 11)
            ]))
    # VOC2010+: make precision monotone (decreasing in recall), then sum the rectangles.
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_mean_average_precision(scores: np.ndarray,
                               targets: np.ndarray,
                               ignore: Optional[np.ndarray] = None,
                               method: str = 'area') -> dict:
    """Per-class AP and their mean over the classes with a positive sample.

    Args:
        scores (np.ndarray): ``(N, C)`` scores.
        targets (np.ndarray): ``(N, C)`` bool ground truth.
        ignore (np.ndarray, optional): ``(N, C)`` bool mask of difficult-only labels.
        method (str): ``'11point'`` or ``'area'``. Defaults to 'area'.

    Returns:
        dict: ``mAP`` (float, in ``[0, 1]``), ``ap`` (list with NaN for classes without a
        positive) and ``method``.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError('scores and targets must both be (N, C), got '
                         f'{scores.shape} and {targets.shape}')
    aps = [
        voc_average_precision(
            scores[:, c], targets[:, c],
            None if ignore is None else np.asarray(ignore)[:, c], method)
        for c in range(scores.shape[1])
    ]
    valid = [ap for ap in aps if not np.isnan(ap)]
    if not valid:
        raise ValueError('no class has a positive sample; mAP is undefined')
    return dict(mAP=float(np.mean(valid)), ap=aps, method=method)
