"""The memory of kNN-MoCo: two column-aligned key queues with one write pointer."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

__all__ = ['DualQueueMemory']

QUEUE_DTYPES = {
    'float32': torch.float32,
    'float16': torch.float16,
    'bfloat16': torch.bfloat16,
}


@MODELS.register_module()
class DualQueueMemory(BaseModule):
    """Storage of `Revisiting Contrastive Methods for Unsupervised Learning of Visual
    Representations <https://arxiv.org/abs/2106.05967>`_ (kNN-MoCo): what the momentum encoder
    saw, nothing about losses.

    - ``key_queue`` (``feat_dim x queue_len``): projected, L2-normalised keys, MoCo's negatives;
    - ``backbone_queue`` (``backbone_dim x queue_len``, only with ``backbone_dim``): the
      L2-normalised pooled *backbone* features of the same keys, column-aligned with
      ``key_queue`` (column ``j`` of both belongs to one image);
    - ``queue_ptr``: the one write pointer both queues share.

    All three are persistent buffers; both queues start as random unit columns, as in MoCo.
    As lightly splits its ``MemoryBankModule`` (storage) from the nearest-neighbour lookup, the
    search lives elsewhere (:func:`revisit_ssl.models.losses.find_neighbours`, a pure function);
    :class:`~revisit_ssl.models.heads.DualQueueHead` uses this memory for its two losses.

    Args:
        queue_len (int): Number of keys ``K`` in each queue; a multiple of the global batch.
        feat_dim (int): Dimension of the projected keys.
        backbone_dim (int, optional): Dimension of the pooled backbone features; None keeps no
            backbone queue (MoCo-v2 without NN). Defaults to None.
        backbone_dtype (str): Storage dtype of the backbone queue, one of ``QUEUE_DTYPES``.
            Defaults to 'float32'.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 queue_len: int,
                 feat_dim: int,
                 backbone_dim: Optional[int] = None,
                 backbone_dtype: str = 'float32',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if queue_len <= 0:
            raise ValueError(f'queue_len must be positive, got {queue_len}')
        if backbone_dtype not in QUEUE_DTYPES:
            raise ValueError(
                f'backbone_queue_dtype={backbone_dtype!r}; choose one of '
                f'{sorted(QUEUE_DTYPES)}')
        self.queue_len = queue_len
        self.register_buffer(
            'key_queue', F.normalize(torch.randn(feat_dim, queue_len), dim=0))
        if backbone_dim is not None:
            self.register_buffer(
                'backbone_queue',
                F.normalize(torch.randn(backbone_dim, queue_len),
                            dim=0).to(QUEUE_DTYPES[backbone_dtype]))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @property
    def has_backbone_queue(self) -> bool:
        return 'backbone_queue' in self._buffers

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

    def _gather(self, local: torch.Tensor) -> torch.Tensor:
        """This step's rows of all processes, rank 0's first; checks they fit the queue."""
        gathered = torch.cat(all_gather(local), dim=0)
        self.check_global_batch(local.shape[0],
                                gathered.shape[0] // local.shape[0])
        return gathered

    def _columns(self, global_batch: int) -> slice:
        ptr = int(self.queue_ptr)
        return slice(ptr, ptr + global_batch)

    @torch.no_grad()
    def enqueue(self,
                key: torch.Tensor,
                key_backbone: Optional[torch.Tensor] = None) -> None:
        """Gather this step's keys from all processes and write them at the shared pointer,
        overwriting the oldest columns.

        Args:
            key (torch.Tensor): ``(B, feat_dim)`` normalised keys of this process.
            key_backbone (torch.Tensor, optional): ``(B, backbone_dim)`` normalised backbone
                features of the same keys; required with a backbone queue.
        """
        keys = self._gather(key)
        columns = self._columns(keys.shape[0])
        self.key_queue[:, columns] = keys.T
        if self.has_backbone_queue:
            if key_backbone is None:
                raise ValueError('a backbone queue needs key_backbone')
            self.backbone_queue[:, columns] = self._gather(key_backbone).T.to(
                self.backbone_queue.dtype)
        self.queue_ptr[0] = columns.stop % self.queue_len

    @torch.no_grad()
    def incoming_backbone(self,
                          key_backbone: torch.Tensor) -> Tuple[slice, torch.Tensor]:
        """Where :meth:`enqueue` of ``key_backbone`` will write and what, without writing.

        Args:
            key_backbone (torch.Tensor): ``(B, backbone_dim)`` normalised backbone features of
                this process's keys.

        Returns:
            tuple[slice, torch.Tensor]: The queue columns the enqueue overwrites and the
            ``(backbone_dim, global B)`` columns it writes there, in the storage dtype.
        """
        incoming = self._gather(key_backbone)
        return (self._columns(incoming.shape[0]),
                incoming.T.to(self.backbone_queue.dtype))

    @torch.no_grad()
    def backbone_queue_after(self, key_backbone: torch.Tensor) -> torch.Tensor:
        """The backbone queue as :meth:`enqueue` of ``key_backbone`` will leave it, without
        writing it (a copy of the whole queue: for inspection; the loss searches with
        :meth:`incoming_backbone` instead).

        Args:
            key_backbone (torch.Tensor): ``(B, backbone_dim)`` normalised backbone features of
                this process's keys.

        Returns:
            torch.Tensor: ``(backbone_dim, queue_len)`` in the storage dtype.
        """
        columns, incoming = self.incoming_backbone(key_backbone)
        after = self.backbone_queue.clone()
        after[:, columns] = incoming
        return after
