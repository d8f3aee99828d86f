"""Contrastive head with two aligned memory queues, for kNN-MoCo."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..losses import find_neighbours, knn_contrastive_loss

__all__ = ['DualQueueHead']

_QUEUE_DTYPES = {
    'float32': torch.float32,
    'float16': torch.float16,
    'bfloat16': torch.bfloat16,
}


@MODELS.register_module()
class DualQueueHead(BaseModule):
    """InfoNCE over a key queue plus the NN loss over an aligned backbone queue.

    Implements the losses of `Revisiting Contrastive Methods for Unsupervised Learning of Visual
    Representations <https://arxiv.org/abs/2106.05967>`_ (kNN-MoCo). The head owns

    - ``key_queue`` (``feat_dim x queue_len``): projected, L2-normalised keys of the momentum
      encoder, the negatives of MoCo's instance loss;
    - ``backbone_queue`` (``backbone_dim x queue_len``): the momentum encoder's L2-normalised
      *backbone* features (before the projection neck) of the same keys, column-aligned with
      ``key_queue``, searched for each query's nearest neighbours;
    - ``queue_ptr``: the one write pointer both queues share.

    All three are persistent buffers (saved in checkpoints). Both queues start as random unit
    columns, as in MoCo.

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
        if backbone_queue_dtype not in _QUEUE_DTYPES:
            raise ValueError(
                f'backbone_queue_dtype={backbone_queue_dtype!r}; choose one of '
                f'{sorted(_QUEUE_DTYPES)}')
        self.queue_len = queue_len
        self.temperature = temperature
        self.use_knn = use_knn
        self.knn_k = knn_k
        self.knn_weight = knn_weight
        #: Where a loaded state dict comes from, for the queue-shape error ('load_from=...',
        #: '--resume ...'); KNNMoCo forwards what TrainingGuardHook tells it.
        self.checkpoint_origin = 'the checkpoint'

        self.register_buffer(
            'key_queue', F.normalize(torch.randn(feat_dim, queue_len), dim=0))
        if use_knn:
            self.register_buffer(
                'backbone_queue',
                F.normalize(torch.randn(backbone_dim, queue_len),
                            dim=0).to(_QUEUE_DTYPES[backbone_queue_dtype]))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    def check_global_batch(self, batch_size: int, world_size: int) -> None:
        """Raise if the queues cannot hold a whole number of global batches.

        Args:
            batch_size (int): Samples per process in one step.
            world_size (int): Number of processes.
        """
        global_batch = batch_size * world_size
        if self.queue_len % global_batch != 0:
            suggestion = max(global_batch,
                             self.queue_len // global_batch * global_batch)
            raise ValueError(
                f'queue_len K={self.queue_len} is not a multiple of the global '
                f'batch size {global_batch} (= {batch_size} per process x '
                f'{world_size} processes), so the enqueue would overrun the '
                f'queue. Set model.head.queue_len to a multiple of '
                f'{global_batch} (e.g. {suggestion}) or change the batch size.')

    def loss(self,
             query: torch.Tensor,
             key: torch.Tensor,
             query_backbone: Optional[torch.Tensor] = None,
             knn_active: bool = False) -> Dict[str, torch.Tensor]:
        """Instance loss and NN loss of one step, from the queues before this step's enqueue.

        Args:
            query (torch.Tensor): ``((1+n)B, feat_dim)`` L2-normalised projections of the
                query views: the B rows of the query crop, then B rows per small crop.
            key (torch.Tensor): ``(B, feat_dim)`` L2-normalised keys of this process's images;
                row ``r`` of every B-row block of ``query`` has key ``r`` as its positive.
            query_backbone (torch.Tensor, optional): ``((1+n)B, backbone_dim)`` L2-normalised
                backbone features of the query rows; required when ``use_knn``.
            knn_active (bool): Whether the NN term enters the total (False during warm-up).

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
        queue_logits = query @ self.key_queue.clone().detach()
        logits = torch.cat([pos_logits, queue_logits], dim=1) / self.temperature
        labels = torch.zeros(num_rows, dtype=torch.long, device=query.device)
        losses = dict(loss_inst=F.cross_entropy(logits, labels))

        if self.use_knn:
            if query_backbone is None:
                raise ValueError('use_knn=True needs query_backbone')
            neighbours = find_neighbours(query_backbone, self.backbone_queue,
                                         self.knn_k)
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

    @torch.no_grad()
    def enqueue(self,
                key: torch.Tensor,
                key_backbone: Optional[torch.Tensor] = None) -> None:
        """Gather this step's keys from all processes and write them at the shared pointer.

        Args:
            key (torch.Tensor): ``(B, feat_dim)`` normalised keys of this process.
            key_backbone (torch.Tensor, optional): ``(B, backbone_dim)`` normalised backbone
                features of the same keys; required when ``use_knn``.
        """
        keys = torch.cat(all_gather(key), dim=0)
        global_batch = keys.shape[0]
        self.check_global_batch(key.shape[0], global_batch // key.shape[0])
        ptr = int(self.queue_ptr)
        self.key_queue[:, ptr:ptr + global_batch] = keys.T
        if self.use_knn:
            if key_backbone is None:
                raise ValueError('use_knn=True needs key_backbone')
            backbone_keys = torch.cat(all_gather(key_backbone), dim=0)
            self.backbone_queue[:, ptr:ptr + global_batch] = backbone_keys.T.to(
                self.backbone_queue.dtype)
        self.queue_ptr[0] = (ptr + global_batch) % self.queue_len

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
        # mmengine's loader only *warns* about shape mismatches when strict=False (as in
        # --resume), which would silently restart from random queues. Stop instead.
        for name in ('key_queue', 'backbone_queue'):
            saved = state_dict.get(prefix + name)
            if saved is None or not hasattr(self, name):
                continue
            if saved.shape != getattr(self, name).shape:
                raise ValueError(self._queue_shape_message(
                    prefix + name, tuple(saved.shape),
                    tuple(getattr(self, name).shape)))
        if (self.use_knn and prefix + 'key_queue' in state_dict
                and prefix + 'backbone_queue' not in state_dict):
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
