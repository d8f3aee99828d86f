"""Semantic segment retrieval (kNN-MoCo paper, appendix A.7).

How well do a frozen backbone's *pixel* features group and match object parts? Every image's
dense feature map is clustered with K-means (K = 15) into regions; a region's descriptor is the
mean feature of its pixels. A training region takes the majority ground-truth class of its
pixels; each validation region takes the class of its single nearest training region (cosine
similarity, no voting). The region labels are painted back at the input resolution and scored
with mIoU against the validation ground truth.

Clustering is :class:`sklearn.cluster.KMeans`, nearest neighbours
:class:`sklearn.neighbors.NearestNeighbors` and the confusion matrix
:func:`sklearn.metrics.confusion_matrix`.
"""
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

import cv2
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import confusion_matrix
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

__all__ = [
    'ImageRegions', 'cluster_regions', 'resize_label_map', 'majority_labels',
    'nearest_region_labels', 'paint_regions', 'accumulate_confusion',
    'iou_from_confusion', 'segment_retrieval_miou'
]


@dataclass
class ImageRegions:
    """The K-means regions of one image.

    Args:
        region_map (np.ndarray): ``(h, w)`` int region index per feature-map pixel, ``0..R-1``.
        descriptors (np.ndarray): ``(R, C)`` L2-normalised mean feature of each region.
    """
    region_map: np.ndarray
    descriptors: np.ndarray


def cluster_regions(feature_map: np.ndarray,
                    num_clusters: int = 15,
                    seed: int = 0) -> ImageRegions:
    """Cluster one image's pixel features into regions.

    Pixel features are L2-normalised first, so K-means groups by direction (the cosine
    geometry the retrieval uses). Fewer distinct pixels than ``num_clusters`` give fewer
    regions; empty clusters are dropped.

    Args:
        feature_map (np.ndarray): ``(C, h, w)`` dense features.
        num_clusters (int): K of K-means. Defaults to 15.
        seed (int): K-means seed. Defaults to 0.
    """
    if feature_map.ndim != 3:
        raise ValueError('feature_map must be (C, h, w), got shape '
                         f'{feature_map.shape}')
    c, h, w = feature_map.shape
    pixels = normalize(feature_map.reshape(c, h * w).T.astype(np.float64))
    num_distinct = len(np.unique(pixels.round(6), axis=0))
    k = max(1, min(num_clusters, num_distinct))
    assignment = KMeans(
        n_clusters=k, n_init=1, random_state=seed).fit_predict(pixels)
    # renumber to 0..R-1 so that every region index has pixels
    used, region_map = np.unique(assignment, return_inverse=True)
    descriptors = np.stack(
        [pixels[region_map == r].mean(0) for r in range(len(used))])
    return ImageRegions(
        region_map=region_map.reshape(h, w), descriptors=normalize(descriptors))


def resize_label_map(label_map: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an integer map to ``size = (height, width)``."""
    height, width = size
    return cv2.resize(
        label_map.astype(np.int32), (width, height),
        interpolation=cv2.INTER_NEAREST)


def majority_labels(region_map: np.ndarray,
                    gt: np.ndarray,
                    num_regions: int,
                    ignore_index: int = 255) -> np.ndarray:
    """Majority ground-truth class of each region (``-1`` when it covers only ignored pixels).

    Args:
        region_map (np.ndarray): ``(H, W)`` region index at the ground-truth resolution.
        gt (np.ndarray): ``(H, W)`` class map.
        num_regions (int): Number of regions ``R``.
        ignore_index (int): Label to skip. Defaults to 255.
    """
    if region_map.shape != gt.shape:
        raise ValueError(f'region map {region_map.shape} and ground truth '
                         f'{gt.shape} differ in size')
    labels = np.full(num_regions, -1, dtype=np.int64)
    valid = gt != ignore_index
    for r in range(num_regions):
        values = gt[(region_map == r) & valid]
        if values.size:
            labels[r] = np.bincount(values).argmax()
    return labels


def nearest_region_labels(query: np.ndarray, memory: np.ndarray,
                          memory_labels: np.ndarray) -> np.ndarray:
    """Label of the single most cosine-similar memory region for every query region."""
    if len(memory) == 0:
        raise ValueError('no labelled training region to retrieve from')
    index = NearestNeighbors(n_neighbors=1, metric='cosine').fit(memory)
    nearest = index.kneighbors(query, return_distance=False)[:, 0]
    return memory_labels[nearest]


def paint_regions(region_map: np.ndarray, region_labels: np.ndarray,
                  size: Tuple[int, int]) -> np.ndarray:
    """Class map at ``size = (height, width)`` from per-region labels."""
    return resize_label_map(region_labels[region_map], size)


def accumulate_confusion(conf: Optional[np.ndarray], pred: np.ndarray,
                         gt: np.ndarray, num_classes: int,
                         ignore_index: int = 255) -> np.ndarray:
    """Add one image to a ``(num_classes, num_classes)`` confusion matrix (rows: truth)."""
    valid = gt != ignore_index
    # confusion_matrix silently drops labels outside ``labels``: refuse them instead
    outside = np.setdiff1d(np.unique(gt[valid]), np.arange(num_classes))
    if outside.size:
        raise ValueError(f'ground truth holds labels {outside.tolist()} outside '
                         f'[0, {num_classes}) and ignore_index {ignore_index}; '
                         'pass the right number of classes')
    cm = confusion_matrix(
        gt[valid].ravel(), pred[valid].ravel(), labels=np.arange(num_classes))
    return cm if conf is None else conf + cm


def iou_from_confusion(conf: np.ndarray) -> Tuple[float, List[Optional[float]]]:
    """Per-class IoU ``TP / (TP + FP + FN)`` and their mean over classes that occur in the
    ground truth or the prediction (mmseg's convention)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = tp / union
    per_class = [None if np.isnan(v) else float(v) for v in iou]
    return float(np.nanmean(iou)), per_class


def segment_retrieval_miou(train: Iterable[Tuple[np.ndarray, np.ndarray]],
                           val: Iterable[Tuple[np.ndarray, np.ndarray]],
                           num_classes: int,
                           num_clusters: int = 15,
                           ignore_index: int = 255,
                           seed: int = 0) -> dict:
    """The whole appendix-A.7 evaluation on precomputed feature maps.

    Args:
        train (Iterable[tuple]): ``(feature_map (C, h, w), gt (H, W))`` per training image.
        val (Iterable[tuple]): The same for validation images.
        num_classes (int): Classes of the ground truth (background included).
        num_clusters (int): K of the per-image K-means. Defaults to 15.
        ignore_index (int): Ground-truth label to skip. Defaults to 255.
        seed (int): K-means seed. Defaults to 0.

    Returns:
        dict: ``mIoU`` (in ``[0, 1]``), ``per_class_iou``, ``num_train_regions``,
        ``num_val_regions`` and ``confusion`` (nested list).
    """
    memory, memory_labels = [], []
    for feature_map, gt in train:
        regions = cluster_regions(feature_map, num_clusters, seed)
        labels = majority_labels(
            resize_label_map(regions.region_map, gt.shape), gt,
            len(regions.descriptors), ignore_index)
        keep = labels >= 0
        memory.append(regions.descriptors[keep])
        memory_labels.append(labels[keep])
    memory = np.concatenate(memory) if memory else np.zeros((0, 1))
    memory_labels = np.concatenate(memory_labels) if memory_labels else None
    conf, num_val_regions = None, 0
    for feature_map, gt in val:
        regions = cluster_regions(feature_map, num_clusters, seed)
        labels = nearest_region_labels(regions.descriptors, memory,
                                       memory_labels)
        pred = paint_regions(regions.region_map, labels, gt.shape)
        conf = accumulate_confusion(conf, pred, gt, num_classes, ignore_index)
        num_val_regions += len(labels)
    if conf is None:
        raise ValueError('no validation image to evaluate')
    miou, per_class = iou_from_confusion(conf)
    return dict(
        mIoU=miou,
        per_class_iou=per_class,
        num_train_regions=int(len(memory_labels)),
        num_val_regions=num_val_regions,
        confusion=conf.tolist())

