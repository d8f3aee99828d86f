"""Weighted k-nearest-neighbour classifier on frozen features.

The classifier of InstDisc (`Wu et al., Unsupervised Feature Learning via Non-Parametric
Instance Discrimination, CVPR 2018 <https://arxiv.org/abs/1805.01978>`_), which the kNN-MoCo
paper and most self-supervised work use to judge a backbone without training anything: each
query takes its ``k`` most cosine-similar training samples, every neighbour votes for its class
with weight ``exp(sim / T)``, and the class with the largest summed vote wins.
"""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

__all__ = ['weighted_knn_scores', 'weighted_knn_predict', 'knn_top1']


@torch.no_grad()
def weighted_knn_scores(train_feats: torch.Tensor,
                        train_labels: torch.Tensor,
                        query_feats: torch.Tensor,
                        num_classes: int,
                        k: int = 20,
                        temperature: float = 0.07,
                        chunk_size: int = 1024) -> torch.Tensor:
    """Summed neighbour votes per class for every query.

    Args:
        train_feats (torch.Tensor): ``(N, D)`` features of the labelled (memory) samples. They
            are L2-normalised here, so the similarity is the cosine similarity.
        train_labels (torch.Tensor): ``(N,)`` integer labels in ``[0, num_classes)``.
        query_feats (torch.Tensor): ``(M, D)`` features to classify.
        num_classes (int): Number of classes.
        k (int): Number of neighbours; capped at ``N`` (a memory smaller than ``k`` votes with
            all of its samples). Defaults to 20.
        temperature (float): ``T`` of the vote weight ``exp(sim / T)``. Defaults to 0.07.
        chunk_size (int): Queries per similarity matrix, to bound memory. Defaults to 1024.

    Returns:
        torch.Tensor: ``(M, num_classes)`` float scores; ``argmax`` is the prediction.
    """
    if train_feats.ndim != 2 or query_feats.ndim != 2:
        raise ValueError('features must be 2-D (num_samples, dim), got '
                         f'{tuple(train_feats.shape)} and '
                         f'{tuple(query_feats.shape)}')
    if train_feats.shape[1] != query_feats.shape[1]:
        raise ValueError(
            f'train and query features differ in dimension: '
            f'{train_feats.shape[1]} vs {query_feats.shape[1]}')
    if train_feats.shape[0] != train_labels.shape[0]:
        raise ValueError(f'{train_feats.shape[0]} train features but '
                         f'{train_labels.shape[0]} train labels')
    if train_feats.shape[0] == 0:
        raise ValueError('the kNN memory (train split) is empty')
    if k < 1 or temperature <= 0:
        raise ValueError(f'need k >= 1 and temperature > 0, got k={k}, '
                         f'temperature={temperature}')
    train_labels = train_labels.long().to(train_feats.device)
    if train_labels.min() < 0 or train_labels.max() >= num_classes:
        raise ValueError(f'train labels must lie in [0, {num_classes}), got '
                         f'[{int(train_labels.min())}, '
                         f'{int(train_labels.max())}]')
    memory = F.normalize(train_feats.float(), dim=1)
    queries = F.normalize(query_feats.float().to(memory.device), dim=1)
    k = min(k, memory.shape[0])
    scores = memory.new_zeros(queries.shape[0], num_classes)
    for start in range(0, queries.shape[0], chunk_size):
        sim = queries[start:start + chunk_size] @ memory.t()
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores[start:start + chunk_size].scatter_add_(
            1, train_labels[top_idx], weights)
    return scores


def weighted_knn_predict(train_feats: torch.Tensor,
                         train_labels: torch.Tensor,
                         query_feats: torch.Tensor,
                         num_classes: int,
                         k: int = 20,
                         temperature: float = 0.07) -> torch.Tensor:
    """Top-1 class of every query (see :func:`weighted_knn_scores` for the arguments).

    Returns:
        torch.Tensor: ``(M,)`` predicted labels.
    """
    return weighted_knn_scores(train_feats, train_labels, query_feats,
                               num_classes, k, temperature).argmax(dim=1)


def knn_top1(train_feats: torch.Tensor,
             train_labels: torch.Tensor,
             query_feats: torch.Tensor,
             query_labels: torch.Tensor,
             num_classes: int,
             ks: Sequence[int] = (20, 200),
             temperature: float = 0.07) -> Dict[int, float]:
    """Top-1 accuracy (in percent) of the weighted kNN classifier for each ``k``.

    Args:
        train_feats (torch.Tensor): ``(N, D)`` memory features.
        train_labels (torch.Tensor): ``(N,)`` memory labels.
        query_feats (torch.Tensor): ``(M, D)`` query features.
        query_labels (torch.Tensor): ``(M,)`` true query labels.
        num_classes (int): Number of classes.
        ks (Sequence[int]): Neighbour counts to evaluate. Defaults to (20, 200).
        temperature (float): Vote temperature. Defaults to 0.07.

    Returns:
        dict[int, float]: ``{k: top-1 accuracy in %}``, keyed by the requested ``k`` (the
        classifier itself caps ``k`` at ``N``).
    """
    if query_feats.shape[0] == 0:
        raise ValueError('no query samples to classify')
    query_labels = query_labels.long().cpu()
    results = {}
    for k in ks:
        pred = weighted_knn_predict(train_feats, train_labels, query_feats,
                                    num_classes, k, temperature).cpu()
        results[int(k)] = float((pred == query_labels).float().mean() * 100)
    return results
