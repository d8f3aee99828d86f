"""DAVIS-2017 semi-supervised scores: region similarity J and boundary F-measure.

The definitions of the davis2017-evaluation toolkit
(https://github.com/davisvideochallenge/davis2017-evaluation, ``davis2017/metrics.py``,
``davis2017/utils.py``, ``davis2017/evaluation.py``), written again from their description:

* **J** (``db_eval_iou``): intersection over union of an object's predicted and true masks;
  1 when both are empty.
* **F** (``f_measure``): precision / recall of the predicted boundary pixels against the true
  ones, a boundary pixel counting as matched when a boundary pixel of the other mask lies
  within a disk of radius ``ceil(bound_th * image diagonal)`` (``bound_th=0.008``: 8 px at
  480 x 854); boundaries are the one-pixel maps of ``_seg2bmap`` (a pixel is on the boundary
  when it differs from its right, lower or lower-right neighbour). F = 2PR / (P + R); 1 when
  both boundaries are empty, 0 when only one is.
* Per sequence, objects are the ids 1..N of the **first** annotation (N = its largest id);
  the first and the last frame are left out (frames 1..n-2), as the semi-supervised task
  gives the first mask. Per object: the mean over frames (``J-Mean``), the share of frames
  above 0.5 (``Recall``) and the mean of the first quarter of frames minus the mean of the
  last quarter (``Decay``). The summary averages each over **all objects** of all sequences;
  ``J&F-Mean`` is (J-Mean + F-Mean) / 2.

Two behaviours of the toolkit are kept: void pixels (255) count as background (it zeroes them
before it builds its void mask, so the mask is empty), and ids above N in a prediction are an
error. One is not: an object the prediction never paints scores 0 here, where the toolkit stops
because the prediction has fewer ids than the ground truth.

Used by ``tools/analysis/davis_label_propagation.py`` (kNN-MoCo paper, Tables 3 and 5,
https://arxiv.org/abs/2106.05967).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

__all__ = [
    'VOID_LABEL', 'DEFAULT_BOUND_TH', 'SUMMARY_KEYS', 'region_similarity',
    'boundary_map', 'boundary_tolerance', 'disk', 'boundary_f_measure',
    'db_statistics', 'evaluate_sequence', 'DAVISScores'
]

#: Label value of "void" pixels in DAVIS annotations (counted as background, as the toolkit).
VOID_LABEL = 255
#: The toolkit's boundary tolerance, a fraction of the image diagonal.
DEFAULT_BOUND_TH = 0.008
#: The toolkit's global result columns, in its order.
SUMMARY_KEYS = ('J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean',
                'F-Recall', 'F-Decay')


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'{name} must be a 2-D mask, got shape {mask.shape}')
    return mask.astype(bool)


def region_similarity(gt: np.ndarray, pred: np.ndarray) -> float:
    """J: intersection over union of two binary masks (1.0 when both are empty).

    Args:
        gt (np.ndarray): True mask ``(H, W)``, any dtype (non-zero = object).
        pred (np.ndarray): Predicted mask of the same shape.
    """
    gt, pred = _binary(gt, 'gt'), _binary(pred, 'pred')
    if gt.shape != pred.shape:
        raise ValueError(
            f'mask shapes differ: gt {gt.shape}, pred {pred.shape}')
    union = np.logical_or(gt, pred).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(gt, pred).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask, half a pixel towards the origin (``_seg2bmap``).

    A pixel is on the boundary when its value differs from its right, lower or lower-right
    neighbour; in the last row only the right neighbour counts, in the last column only the
    lower one, and the bottom-right pixel never is.
    """
    seg = _binary(mask, 'mask')
    right = np.zeros_like(seg)
    down = np.zeros_like(seg)
    diag = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    down[:-1, :] = seg[1:, :]
    diag[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ right) | (seg ^ down) | (seg ^ diag)
    bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    bmap[:, -1] = seg[:, -1] ^ down[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_tolerance(shape: Sequence[int],
                       bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Radius in pixels of the matching disk: ``bound_th`` itself when >= 1, else
    ``ceil(bound_th * sqrt(H^2 + W^2))``."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * float(np.linalg.norm(shape[:2]))))


def disk(radius: int) -> np.ndarray:
    """Disk structuring element ``x^2 + y^2 <= r^2`` of side ``2r + 1`` (skimage's ``disk``)."""
    grid = np.arange(-radius, radius + 1)
    return (grid[None, :]**2 + grid[:, None]**2) <= radius**2


def boundary_f_measure(gt: np.ndarray,
                       pred: np.ndarray,
                       bound_th: float = DEFAULT_BOUND_TH) -> float:
    """F: boundary F-measure of a predicted against a true binary mask (toolkit ``f_measure``).

    Args:
        gt (np.ndarray): True mask ``(H, W)``.
        pred (np.ndarray): Predicted mask of the same shape.
        bound_th (float): Tolerance, a fraction of the image diagonal (< 1) or pixels (>= 1).
            Defaults to 0.008.
    """
    gt, pred = _binary(gt, 'gt'), _binary(pred, 'pred')
    if gt.shape != pred.shape:
        raise ValueError(
            f'mask shapes differ: gt {gt.shape}, pred {pred.shape}')
    gt_b, pred_b = boundary_map(gt), boundary_map(pred)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # precision or recall is 0 (the toolkit's 1/0 cases give F = 0)
    selem = disk(boundary_tolerance(gt.shape, bound_th))
    gt_dil = ndimage.binary_dilation(gt_b, structure=selem)
    pred_dil = ndimage.binary_dilation(pred_b, structure=selem)
    precision = float((pred_b & gt_dil).sum()) / n_pred
    recall = float((gt_b & pred_dil).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def db_statistics(values: Sequence[float]) -> Tuple[float, float, float]:
    """Mean, recall (share > 0.5) and decay of one object's per-frame scores.

    Decay: the frames are cut into 4 overlapping bins at ``round(linspace(1, n, 5)) - 1``;
    decay = mean of the first bin - mean of the last (toolkit ``db_statistics``).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError('no per-frame values: a sequence needs at least 3 '
                         'frames (frames 1..n-2 are scored)')
    mean = float(np.nanmean(values))
    recall = float(np.nanmean(values > 0.5))
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def _object_count(first_gt: np.ndarray) -> int:
    first = np.where(first_gt == VOID_LABEL, 0, first_gt)
    return int(first.max())


def evaluate_sequence(
        gt: np.ndarray,
        pred: np.ndarray,
        bound_th: float = DEFAULT_BOUND_TH) -> Dict[str, np.ndarray]:
    """Per-object, per-frame J and F of one sequence (frames 1..n-2).

    Args:
        gt (np.ndarray): True id maps ``(T, H, W)`` (0 = background, 255 = void).
        pred (np.ndarray): Predicted id maps ``(T, H, W)``.
        bound_th (float): Boundary tolerance. Defaults to 0.008.

    Returns:
        dict: ``J`` and ``F``, arrays ``(num_objects, T - 2)``; ``object_ids``.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise ValueError('gt and pred must be (T, H, W) id maps of one shape, '
                         f'got {gt.shape} and {pred.shape}')
    if gt.shape[0] < 3:
        raise ValueError(f'a sequence of {gt.shape[0]} frames has nothing to '
                         'score: the first and last frames are left out')
    num_objects = _object_count(gt[0])
    gt = np.where(gt == VOID_LABEL, 0, gt)
    scored_gt, scored_pred = gt[1:-1], pred[1:-1]
    if scored_pred.max(initial=0) > num_objects:
        raise ValueError(
            f'the prediction has id {int(scored_pred.max())}, but the first '
            f'annotation has only {num_objects} objects')
    j = np.zeros((num_objects, len(scored_gt)))
    f = np.zeros_like(j)
    for obj in range(1, num_objects + 1):
        for t in range(len(scored_gt)):
            g, p = scored_gt[t] == obj, scored_pred[t] == obj
            j[obj - 1, t] = region_similarity(g, p)
            f[obj - 1, t] = boundary_f_measure(g, p, bound_th)
    return dict(J=j, F=f, object_ids=np.arange(1, num_objects + 1))


class DAVISScores:
    """Collect sequences and summarise them as the toolkit's global table.

    Example:
        >>> scores = DAVISScores()
        >>> scores.add('seq', gt, pred)      # (T, H, W) id maps
        >>> scores.summary()['J&F-Mean']
    """

    def __init__(self, bound_th: float = DEFAULT_BOUND_TH) -> None:
        self.bound_th = bound_th
        self.objects: List[dict] = []

    def add(self, name: str, gt: np.ndarray, pred: np.ndarray) -> List[dict]:
        """Score one sequence; returns its per-object rows (also kept)."""
        res = evaluate_sequence(gt, pred, self.bound_th)
        rows = []
        for i, obj in enumerate(res['object_ids']):
            jm, jr, jd = db_statistics(res['J'][i])
            fm, fr, fd = db_statistics(res['F'][i])
            rows.append({
                'object': f'{name}_{int(obj)}',
                'sequence': name,
                'J-Mean': jm,
                'J-Recall': jr,
                'J-Decay': jd,
                'F-Mean': fm,
                'F-Recall': fr,
                'F-Decay': fd
            })
        self.objects.extend(rows)
        return rows

    def summary(self) -> Optional[Dict[str, float]]:
        """The global means over all objects (None before any sequence)."""
        if not self.objects:
            return None
        out = {
            key: float(np.mean([row[key] for row in self.objects]))
            for key in SUMMARY_KEYS[1:]
        }
        out = {'J&F-Mean': (out['J-Mean'] + out['F-Mean']) / 2, **out}
        out['num_objects'] = len(self.objects)
        return out
