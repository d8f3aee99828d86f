"""Contrastive head of kNN-MoCo: the instance loss and the NN loss over a dual-queue memory."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..losses import find_neighbours, knn_contrastive_loss
from ..memories import DualQueueMemory

__all__ = ['DualQueueHead']

#: The memory's buffers; checkpoints store them as ``head.<name>`` (the layout from before the
#: memory was a module of its own), so old and new checkpoints share one set of keys.
_MEMORY = 'memory.'
_MEMORY_BUFFERS = ('key_queue', 'backbone_queue', 'queue_ptr')


def _save_memory_under_head_names(module, state_dict, prefix, local_metadata):
    """State-dict post hook: ``head.memory.key_queue`` -> ``head.key_queue`` (and the others)."""
    for name in _MEMORY_BUFFERS:
        key = prefix + _MEMORY + name
        if key in state_dict:
            state_dict[prefix + name] = state_dict.pop(key)


def _report_memory_under_head_names(module, incompatible_keys):
    """Load-state-dict post hook: missing ``head.memory.key_queue`` is reported as the
    checkpoint names it, ``head.key_queue``."""
    missing = incompatible_keys.missing_keys
    for i, key in enumerate(missing):
        for name in _MEMORY_BUFFERS:
            if key.endswith(_MEMORY + name):
                missing[i] = key[:-len(_MEMORY + name)] + name


@MODELS.register_module()
class DualQueueHead(BaseModule):
    """InfoNCE over a key queue plus the NN loss over an aligned backbone queue.

    Implements the losses of `Revisiting Contrastive Methods for Unsupervised Learning of Visual
    Representations <https://arxiv.org/abs/2106.05967>`_ (kNN-MoCo) over a
    :class:`~revisit_ssl.models.memories.DualQueueMemory` (``self.memory``: ``key_queue``,
    ``backbone_queue`` and their shared ``queue_ptr``; :class:`KNNMoCo` enqueues into it after
    the losses). Checkpoints keep the buffers as ``head.key_queue``, ``head.backbone_queue``
    and ``head.queue_ptr``.

    - ``loss_inst``: InfoNCE, logits ``[q . k_own, q . key_queue] / T``.
    - ``loss_knn``: for each query, the ``knn_k`` backbone-queue columns nearest to its backbone
      feature index its positives in the softmax over ``q . key_queue / T``
      (:func:`~revisit_ssl.models.losses.knn_contrastive_loss`).

    Args:
        queue_len (int): Number of keys ``K`` in each queue. Must be a multiple of the global
            batch size (batch per process x processes). Defaults to 65536.
        feat_dim (int): Dimension of the projected features. Defaults to 128.
        backbone_dim (int): Dimension of the pooled backbone features (2048 for ResNet-50,
            512 for ResNet-18). Defaults to 2048.
        temperature (float): Softmax temperature ``T`` of both losses. Defaults to 0.2.
        use_knn (bool): Whether the NN invariance is used at all. When False there is no
            backbone queue and the head is exactly MoCo-v2's InfoNCE. Defaults to True.
        knn_k (int): Number of neighbours taken as extra positives. Defaults to 20.
        knn_weight (float): Weight ``lambda`` of the NN loss. Defaults to 0.4.
        backbone_queue_dtype (str): Storage dtype of the backbone queue: 'float32', 'float16'
            or 'bfloat16'. At K = 65536 x 2048 the float32 queue takes 512 MiB on every GPU;
            half precision halves that; neighbours are still searched in float32 (see
            docs/benchmarks.md for memory, speed and neighbour agreement). Defaults to 'float32'.
        search_after_enqueue (bool): False (default): neighbours and logits both come from the
            queues as they were before this step's enqueue. True: the release's no-warm-up
            variant (its ``main_ours.py``; the paper's appendix B, "update the memory bank
            before computing the loss"): neighbours are searched in the backbone queue *after*
            this step's keys are written, while the logits stay those of the key queue
            *before* it, so for the newest columns a neighbour's logit belongs to the key that
            the enqueue evicts. Used with ``knn_warmup_epochs=0``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 backbone_dim: int = 2048,
                 temperature: float = 0.2,
                 use_knn: bool = True,
                 knn_k: int = 20,
                 knn_weight: float = 0.4,
                 backbone_queue_dtype: str = 'float32',
                 search_after_enqueue: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if queue_len <= 0:
            raise ValueError(f'queue_len must be positive, got {queue_len}')
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}')
        if use_knn and not 0 < knn_k <= queue_len:
            raise ValueError(
                f'knn_k={knn_k} must be in [1, queue_len={queue_len}]')
        if knn_weight < 0:
            raise ValueError(f'knn_weight must be >= 0, got {knn_weight}')
        if search_after_enqueue and not use_knn:
            raise ValueError('search_after_enqueue=True is a variant of the NN '
                             'loss: it needs use_knn=True')
        self.temperature = temperature
        self.use_knn = use_knn
        self.knn_k = knn_k
        self.knn_weight = knn_weight
        self.search_after_enqueue = search_after_enqueue
        #: Where a loaded state dict comes from, for the queue-shape error ('load_from=...',
        #: '--resume ...'); KNNMoCo forwards what TrainingGuardHook tells it.
        self.checkpoint_origin = 'the checkpoint'
        self.memory = DualQueueMemory(
            queue_len,
            feat_dim,
            backbone_dim=backbone_dim if use_knn else None,
            backbone_dtype=backbone_queue_dtype)
        self.register_state_dict_post_hook(_save_memory_under_head_names)
        self.register_load_state_dict_post_hook(_report_memory_under_head_names)

    # the memory's buffers, read-only, under the names checkpoints use
    @property
    def queue_len(self) -> int:
        return self.memory.queue_len

    @property
    def key_queue(self) -> torch.Tensor:
        return self.memory.key_queue

    @property
    def backbone_queue(self) -> torch.Tensor:
        if not self.memory.has_backbone_queue:
            raise AttributeError('use_knn=False: the head has no backbone_queue')
        return self.memory.backbone_queue

    @property
    def queue_ptr(self) -> torch.Tensor:
        return self.memory.queue_ptr

    def loss(self,
             query: torch.Tensor,
             key: torch.Tensor,
             query_backbone: Optional[torch.Tensor] = None,
             knn_active: bool = False,
             key_backbone: Optional[torch.Tensor] = None
             ) -> Dict[str, torch.Tensor]:
        """Instance loss and NN loss of one step; the memory is not written.

        Args:
            query (torch.Tensor): ``((1+n)B, feat_dim)`` L2-normalised projections of the
                query views: the B rows of the query crop, then B rows per small crop.
            key (torch.Tensor): ``(B, feat_dim)`` L2-normalised keys of this process's images;
                row ``r`` of every B-row block of ``query`` has key ``r`` as its positive.
            query_backbone (torch.Tensor, optional): ``((1+n)B, backbone_dim)`` L2-normalised
                backbone features of the query rows; required when ``use_knn``.
            knn_active (bool): Whether the NN term enters the total (False during warm-up).
            key_backbone (torch.Tensor, optional): ``(B, backbone_dim)`` L2-normalised backbone
                features of the keys, this step's enqueue; required with
                ``search_after_enqueue``.

        Returns:
            dict[str, Tensor]: ``loss_inst``; with ``use_knn`` also ``loss_knn`` (the weighted
            term ``lambda * L_knn`` that enters the sum, 0 during warm-up) and ``knn_raw`` (the
            unweighted ``L_knn``, logged every iteration, never summed).
        """
        num_rows, batch_size = query.shape[0], key.shape[0]
        if num_rows % batch_size != 0:
            raise ValueError(f'{num_rows} query rows are not a whole number of '
                             f'views of {batch_size} images')
        positive = key.repeat(num_rows // batch_size, 1)
        pos_logits = (query * positive).sum(dim=1, keepdim=True)
        # clone: the enqueue after this step writes the queue in place, while autograd still
        # needs the values of this forward for the backward pass.
        queue_logits = query @ self.memory.key_queue.clone().detach()
        logits = torch.cat([pos_logits, queue_logits], dim=1) / self.temperature
        labels = torch.zeros(num_rows, dtype=torch.long, device=query.device)
        losses = dict(loss_inst=F.cross_entropy(logits, labels))

        if self.use_knn:
            if query_backbone is None:
                raise ValueError('use_knn=True needs query_backbone')
            neighbours = find_neighbours(query_backbone,
                                         self.memory.backbone_queue, self.knn_k,
                                         overwrite=self._pending_enqueue(key_backbone))
            if knn_active:
                knn = knn_contrastive_loss(logits[:, 1:], neighbours)
                losses['loss_knn'] = self.knn_weight * knn
            else:
                # warm-up: log the value, but keep it out of the graph and the sum
                with torch.no_grad():
                    knn = knn_contrastive_loss(logits[:, 1:], neighbours)
                losses['loss_knn'] = knn.new_zeros(())
            losses['knn_raw'] = knn.detach()
        return losses

    def _pending_enqueue(self, key_backbone: Optional[torch.Tensor]
                         ) -> Optional[Tuple[slice, torch.Tensor]]:
        """None (search the queue as stored), or with ``search_after_enqueue`` the columns
        this step's enqueue will write, which the search then sees in their place."""
        if not self.search_after_enqueue:
            return None
        if key_backbone is None:
            raise ValueError('search_after_enqueue=True needs key_backbone (the '
                             'backbone features this step enqueues)')
        return self.memory.incoming_backbone(key_backbone)

    # ------------------------------------------------------------------ checkpoints

    def _queue_shape_message(self, name: str, saved: tuple, own: tuple) -> str:
        origin = self.checkpoint_origin
        resume = (f'Resume with the same model.head settings (e.g. '
                  f'--cfg-options model.head.queue_len={saved[1]})')
        fresh = ('to start new queues from its weights, make it backbone-only '
                 'with tools/model_converters/extract_backbone.py CKPT OUT and '
                 'set load_from=OUT')
        if origin.startswith('--resume'):
            fix = f'{resume}, or, {fresh} (without --resume).'
        elif origin.startswith('load_from'):
            fix = (f'load_from restores the queues too: {fresh}, or use the '
                   f'same model.head settings (e.g. --cfg-options '
                   f'model.head.queue_len={saved[1]}).')
        else:
            fix = f'{resume}, or, {fresh}.'
        return (f'{origin}: its {name} has shape {saved} but this model\'s '
                f'has {own}: queue_len / feat_dim / backbone_dim differ from '
                f'the run that saved it. {fix}')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # Runs before the memory loads (torch and mmengine alike): move head.<buffer> to
        # head.memory.<buffer> in place. mmengine's loader only *warns* about shape mismatches
        # when strict=False (as in --resume), which would silently restart from random queues:
        # stop instead.
        for name in _MEMORY_BUFFERS:
            if prefix + name in state_dict:
                state_dict[prefix + _MEMORY + name] = state_dict.pop(prefix + name)
        for name in ('key_queue', 'backbone_queue'):
            saved = state_dict.get(prefix + _MEMORY + name)
            own = self.memory._buffers.get(name)
            if saved is None or own is None:
                continue
            if saved.shape != own.shape:
                raise ValueError(self._queue_shape_message(
                    prefix + name, tuple(saved.shape), tuple(own.shape)))
        if (self.use_knn and prefix + _MEMORY + 'key_queue' in state_dict
                and prefix + _MEMORY + 'backbone_queue' not in state_dict):
            print_log(
                'The checkpoint has a key queue but no backbone queue (it was '
                'trained with use_knn=False): the backbone queue starts from '
                'random unit vectors, so the first queue_len keys of NN '
                'neighbours are random.',
                logger='current',
                level=30)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
