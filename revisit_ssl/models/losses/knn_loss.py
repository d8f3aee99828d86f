"""The nearest-neighbour (NN) contrastive loss of kNN-MoCo.

`Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
<https://arxiv.org/abs/2106.05967>`_, Section 4 ("nearest neighbours"): for a query with projected
feature ``q`` and backbone feature ``h``, the ``k`` memory entries whose *backbone* features are
closest to ``h`` are treated as extra positives of ``q``:

.. math::

    \\mathcal{L}_{knn}(q) = -\\frac{1}{k} \\sum_{j \\in \\mathrm{topk}(h \\cdot H)}
        \\log \\frac{\\exp(q \\cdot z_j / \\tau)}{\\sum_{i=1}^{K} \\exp(q \\cdot z_i / \\tau)}

where ``H`` is the backbone queue and ``z_1..z_K`` the key queue (aligned column by column). The
softmax runs over the ``K`` queue columns only: the query's own key is not part of this term.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ['find_neighbours', 'knn_contrastive_loss']

_CHUNK = 8192  # queue columns upcast at a time


@torch.no_grad()
def find_neighbours(
        query_backbone: torch.Tensor,
        backbone_queue: torch.Tensor,
        k: int,
        overwrite: Optional[Tuple[slice, torch.Tensor]] = None) -> torch.Tensor:
    """Indices of the ``k`` most similar backbone-queue columns for every query.

    No gradient flows through the selection.

    Args:
        query_backbone (torch.Tensor): ``(N, D)`` L2-normalised backbone features of the queries.
        backbone_queue (torch.Tensor): ``(D, K)`` L2-normalised backbone features of past keys,
            in any floating dtype (float16 / bfloat16 storage halves its memory).
        k (int): Neighbours per query.
        overwrite (tuple[slice, torch.Tensor], optional): ``(columns, new)``: search as if
            ``backbone_queue[:, columns]`` held ``new`` (``(D, len(columns))``), i.e. as this
            step's enqueue will leave the queue, without copying the queue. Defaults to None.

    Returns:
        torch.Tensor: ``(N, k)`` long indices into the queue columns, most similar first.
    """
    if not 0 < k <= backbone_queue.shape[1]:
        raise ValueError(f'knn_k={k} must be in [1, queue_len='
                         f'{backbone_queue.shape[1]}]')
    # Similarities in at least float32 even for a half-precision queue: rounding them to
    # bfloat16 before the top-k changes 10-30% of the neighbours (docs/benchmarks.md).
    # Upcasting column chunks keeps the transient copy small.
    compute = torch.promote_types(backbone_queue.dtype, torch.float32)
    query = query_backbone.to(compute)
    if backbone_queue.dtype == compute:  # float32 storage (default): one product, no copies
        similarity = query @ backbone_queue
    else:
        similarity = torch.cat([
            query @ backbone_queue[:, start:start + _CHUNK].to(compute)
            for start in range(0, backbone_queue.shape[1], _CHUNK)
        ], dim=1)
    if overwrite is not None:
        columns, new = overwrite
        similarity[:, columns] = query @ new.to(compute)
    return similarity.topk(k, dim=1).indices


def knn_contrastive_loss(queue_logits: torch.Tensor,
                         neighbours: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the neighbours under a softmax over the queue.

    Args:
        queue_logits (torch.Tensor): ``(N, K)`` logits ``q . key_queue / T`` of the queries against
            the key queue (before this step's enqueue).
        neighbours (torch.Tensor): ``(N, k)`` column indices from :func:`find_neighbours`.

    Returns:
        torch.Tensor: Scalar loss, the mean over the ``N`` query rows of each row's mean over its
        ``k`` neighbours.
    """
    log_prob = F.log_softmax(queue_logits, dim=1)
    return -log_prob.gather(1, neighbours).mean(dim=1).mean()
