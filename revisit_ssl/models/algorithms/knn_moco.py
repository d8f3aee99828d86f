"""kNN-MoCo: MoCo-v2 with multi-crop queries and nearest-neighbour positives."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import ExponentialMovingAverage
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...utils.checkpoint_layouts import (BARE_BACKBONE, KNN_MOCO,
                                         PREFIXED_BACKBONE, detect_layout)

__all__ = ['KNNMoCo', 'UnswitchedWarmupError', 'check_feature_dims']


class UnswitchedWarmupError(RuntimeError):
    """A kNN warm-up is configured but nothing (no KNNWarmupHook) switches the NN loss on."""

# the layout KNNMoCo's state dict has (revisit_ssl/utils/checkpoint_layouts.py)
_ONLINE_PREFIX = KNN_MOCO.online_prefix
_MOMENTUM_PREFIX = KNN_MOCO.momentum_prefix


def _pooled(feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    """L2-normalised global-average-pooled last backbone stage."""
    return F.normalize(F.adaptive_avg_pool2d(feats[-1], 1).flatten(1), dim=1)


def _backbone_out_channels(backbone: nn.Module) -> Optional[int]:
    """Channels of the last stage the backbone returns (mmpretrain ResNet), else None."""
    res_layers = getattr(backbone, 'res_layers', None)
    out_indices = getattr(backbone, 'out_indices', None)
    if res_layers and out_indices:
        return getattr(backbone, res_layers[max(out_indices)])[-1].out_channels
    return getattr(backbone, 'feat_dim', None)


def check_feature_dims(backbone: nn.Module, neck: nn.Module,
                       head: nn.Module) -> None:
    """Raise when backbone, neck and head widths do not fit, naming the fields to set.

    Changing ``model.backbone.depth`` (or its width) alone otherwise fails at the first step
    with ``mat1 and mat2 shapes cannot be multiplied``.

    Args:
        backbone (nn.Module): The online backbone.
        neck (nn.Module): The projection neck (its first ``Linear`` takes the backbone feature).
        head (nn.Module): The :class:`DualQueueHead`.
    """
    feat = _backbone_out_channels(backbone)
    linears = [m for m in neck.modules() if isinstance(m, nn.Linear)]
    if feat is None or not linears:
        return
    fixes = []
    if linears[0].in_features != feat:
        fixes.append(('model.neck.in_channels', linears[0].in_features, feat))
    backbone_queue = getattr(head, 'backbone_queue', None)
    if backbone_queue is not None and backbone_queue.shape[0] != feat:
        fixes.append(('model.head.backbone_dim', backbone_queue.shape[0], feat))
    key_queue = getattr(head, 'key_queue', None)
    if key_queue is not None and key_queue.shape[0] != linears[-1].out_features:
        fixes.append(('model.head.feat_dim', key_queue.shape[0],
                      linears[-1].out_features))
    if not fixes:
        return
    arch = ', '.join(f'{name}={getattr(backbone, name)}'
                     for name in ('depth', 'stem_channels', 'base_channels')
                     if hasattr(backbone, name))
    raise ValueError(
        f'The backbone {type(backbone).__name__}({arch}) gives {feat}-d '
        f'features and the neck projects to {linears[-1].out_features}-d, but '
        + ', '.join(f'{name}={have}' for name, have, _ in fixes) +
        '. Set --cfg-options ' +
        ' '.join(f'{name}={want}' for name, _, want in fixes) +
        ' (model.neck.hid_channels may stay).')


def _backbone_keys(model: nn.Module) -> list:
    return [
        k for k in model.backbone.state_dict()
        if not k.endswith('num_batches_tracked')
    ]


def _expand_backbone_only(model: nn.Module, state_dict: dict,
                          prefix: str) -> bool:
    """Re-key a backbone-only state dict into both backbones, in place.

    Backbone-only means one encoder and nothing else: ``backbone.*`` alone (the converter's
    default output) or bare keys (``conv1.weight``, ...: torchvision, ``--format
    torchvision``).

    Returns:
        bool: Whether the state dict was backbone-only.
    """
    relative = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
    if not relative:
        return False
    layout = detect_layout(relative)
    backbone = set(model.backbone.state_dict())
    if layout is PREFIXED_BACKBONE:
        if not all(r.startswith(_ONLINE_PREFIX) for r in relative):
            return False  # a neck or head too (a classifier, ...): it loads as it is
        for rel, key in relative.items():
            if rel[len(_ONLINE_PREFIX):] in backbone:
                state_dict[prefix + _MOMENTUM_PREFIX +
                           rel[len(_ONLINE_PREFIX):]] = state_dict[key]
        return True
    own_names = set(model._modules) | set(model._parameters) | set(
        model._buffers)
    if layout is not BARE_BACKBONE or any(
            r.split('.', 1)[0] in own_names for r in relative):
        return False
    if not backbone & set(relative):
        return False  # a foreign layout: the coverage check reports it
    for rel, key in relative.items():
        if rel in backbone:
            value = state_dict.pop(key)
            state_dict[prefix + _ONLINE_PREFIX + rel] = value
            state_dict[prefix + _MOMENTUM_PREFIX + rel] = value
    return True


@MODELS.register_module()
class KNNMoCo(BaseSelfSupervisor):
    """kNN-MoCo.

    Implementation of `Revisiting Contrastive Methods for Unsupervised Learning of Visual
    Representations <https://arxiv.org/abs/2106.05967>`_ (Van Gansbeke et al., NeurIPS 2021):
    MoCo-v2 plus the paper's invariances. The views arrive as
    ``[query, key, small_1, ..., small_n]``:

    1. The online encoder (``backbone`` + ``neck``) embeds the query view, then all small views
       in one concatenated forward (so the small crops have their own BN statistics). Each of
       the ``(1+n)B`` query rows keeps its projection ``q`` and pooled backbone feature ``h``.
    2. The momentum encoder (an EMA copy of backbone + neck, updated once per step before the
       key forward and never seen by the optimizer) embeds the key view into ``k`` and ``hk``.
       Across several processes the key batch is shuffled for BN (mmpretrain's
       ``batch_shuffle_ddp``); a single process does not shuffle, because shuffling inside one
       batch does not change BN statistics.
    3. :class:`DualQueueHead` computes ``loss_inst`` (InfoNCE, every small crop's positive is the
       key of its own image) and, after the warm-up, ``loss_knn = lambda * L_knn`` from the
       top-k backbone-queue neighbours; then both queues of its memory
       (:class:`DualQueueMemory`) receive the gathered keys.

    The warm-up is switched by :class:`~revisit_ssl.engine.hooks.KNNWarmupHook` (in
    ``default_hooks`` of ``configs/_base_/default_runtime.py``), as mmpretrain's
    ``DenseCLHook`` switches DenseCL's loss weight: it calls :meth:`set_knn_active` before every
    iteration from the runner's epoch (or iteration). A step with a warm-up configured and no
    hook having set the state is an error that names the hook, never a silent run with (or
    without) the NN loss.

    Args:
        backbone (dict): Config of the backbone (ResNet-50 in the paper).
        neck (dict): Config of the projection neck (``MoCoV2Neck`` 2048-2048-128).
        head (dict): Config of the :class:`DualQueueHead`.
        momentum (float): EMA momentum in mmengine's convention, i.e. the weight of the *online*
            parameters: ``theta_k <- (1 - momentum) theta_k + momentum theta_q``. The paper's
            m = 0.999 is ``momentum=0.001``; with multi-crop it uses m = 0.995,
            ``momentum=0.005``. Defaults to 0.001.
        knn_warmup_epochs (int): Epochs before the NN loss enters the total (5 for 200 epochs,
            20 for 800; 0 for the release's no-warm-up variant). The backbone queue fills
            during warm-up. Needs an epoch-based train loop. Defaults to 5.
        knn_warmup_iters (int, optional): The warm-up in iterations instead; when set it
            replaces ``knn_warmup_epochs`` (needed with ``IterBasedTrainLoop``, which has no
            epochs). Defaults to None.
        num_small_crops (int, optional): Number of small crops the pipeline must deliver; a step
            with another number of views is an error. None accepts any. Defaults to None.
        allow_partial_load (bool): Loading a checkpoint (``load_from`` or a resume) that leaves
            any tensor of the online or momentum backbone unfilled is an error that says how
            many matched; True only logs it, and the unfilled tensors keep their
            initialisation. A backbone-only checkpoint (``tools/model_converters/
            extract_backbone.py``: ``backbone.conv1.weight``, ... alone, or bare keys
            ``conv1.weight``, ...) is loaded into both backbones either way. Defaults to False.
        pretrained (str, optional): Checkpoint to initialise from. Defaults to None.
        data_preprocessor (dict, optional): Defaults to ``SelfSupDataPreprocessor``.
        init_cfg (dict or list[dict], optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 momentum: float = 0.001,
                 knn_warmup_epochs: int = 5,
                 knn_warmup_iters: Optional[int] = None,
                 num_small_crops: Optional[int] = None,
                 allow_partial_load: bool = False,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not 0 < momentum <= 1:
            raise ValueError(
                f'momentum={momentum} must be in (0, 1]; it is the weight of '
                f'the online encoder (paper m=0.999 -> momentum=0.001)')
        if knn_warmup_epochs < 0:
            raise ValueError(
                f'knn_warmup_epochs must be >= 0, got {knn_warmup_epochs}')
        if knn_warmup_iters is not None and knn_warmup_iters < 0:
            raise ValueError(
                f'knn_warmup_iters must be >= 0 or None, got {knn_warmup_iters}')
        self.knn_warmup_epochs = knn_warmup_epochs
        self.knn_warmup_iters = knn_warmup_iters
        # set by KNNWarmupHook (or set_knn_active); None: nobody has said
        self._knn_active: Optional[bool] = None
        self.num_small_crops = num_small_crops
        self.allow_partial_load = allow_partial_load
        #: Where the next checkpoint comes from ('load_from=...', '--resume ...'), for load
        #: errors; set by TrainingGuardHook before the runner loads it.
        self.checkpoint_origin = 'the checkpoint'
        check_feature_dims(self.backbone, self.neck, self.head)
        # ExponentialMovingAverage deep-copies the modules and freezes the copy
        # (requires_grad=False); its first update copies the online weights.
        self.momentum_encoder = ExponentialMovingAverage(
            nn.Sequential(self.backbone, self.neck), momentum)

    @property
    def checkpoint_origin(self) -> str:
        return self._checkpoint_origin

    @checkpoint_origin.setter
    def checkpoint_origin(self, origin: str) -> None:
        # the head words its queue-shape error after it
        self._checkpoint_origin = origin
        self.head.checkpoint_origin = origin

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # Runs before the children load (torch and mmengine alike), so a backbone-only state
        # dict can be re-keyed in place for both backbones.
        backbone_only = _expand_backbone_only(self, state_dict, prefix)
        self._check_backbone_coverage(state_dict, prefix, backbone_only)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _check_backbone_coverage(self, state_dict: dict, prefix: str,
                                 backbone_only: bool) -> None:
        """Count the backbone tensors the state dict fills (present, same shape); stop if any
        stays unfilled unless ``allow_partial_load``."""
        own = self.state_dict()
        keys = _backbone_keys(self)
        counts, unfilled, reshaped = {}, [], []
        momentum_fresh = prefix + 'momentum_encoder.steps' not in state_dict
        for encoder, part in (('online', _ONLINE_PREFIX),
                              ('momentum', _MOMENTUM_PREFIX)):
            filled = 0
            for k in keys:
                saved = state_dict.get(prefix + part + k)
                if saved is None:
                    unfilled.append(part + k)
                elif saved.shape != own[part + k].shape:
                    reshaped.append(f'{part + k}: checkpoint '
                                    f'{tuple(saved.shape)} vs model '
                                    f'{tuple(own[part + k].shape)}')
                    unfilled.append(part + k)
                else:
                    filled += 1
            counts[encoder] = filled
        total = len(keys)
        if counts['momentum'] == 0 and counts['online'] == total and (
                momentum_fresh):
            # mmengine's EMA copies the online weights at its first update (steps == 0)
            unfilled = [k for k in unfilled if not k.startswith(_MOMENTUM_PREFIX)]
            note = '; the momentum encoder copies it at the first step'
        else:
            note = ''
        summary = (f'{self.checkpoint_origin} filled {counts["online"]}/{total} '
                   f'tensors of the online backbone and '
                   f'{counts["momentum"]}/{total} of the momentum backbone'
                   f'{note}')
        if backbone_only:
            summary += (' (a backbone-only checkpoint: neck, head and queues '
                        'start fresh)')
        if not unfilled:
            print_log(summary, logger='current')
            return
        examples = ', '.join(
            repr(k) for k in list(state_dict)[:4]) or 'none (it is empty)'
        detail = (f'; {len(reshaped)} have another shape, e.g. {reshaped[0]}'
                  if reshaped else '')
        message = (
            f'{summary}{detail}. The checkpoint\'s keys begin {examples}; a '
            f'KNNMoCo checkpoint has {_ONLINE_PREFIX}* and {_MOMENTUM_PREFIX}*, '
            f'a backbone-only one (tools/model_converters/extract_backbone.py) '
            f'has {_ONLINE_PREFIX}conv1.weight, ... alone (or bare conv1.weight, '
            f'layer1.0.conv1.weight, ...). Convert the '
            f'checkpoint, make model.backbone match it, or set '
            f'model.allow_partial_load=True to train with the unfilled tensors '
            f'at their initialisation.')
        if not self.allow_partial_load:
            raise ValueError(message)
        print_log(message, logger='current', level=30)

    @property
    def has_knn_warmup(self) -> bool:
        """Whether the NN loss waits for a warm-up (then something must switch it on)."""
        warmup = (self.knn_warmup_iters if self.knn_warmup_iters is not None
                  else self.knn_warmup_epochs)
        return self.head.use_knn and warmup > 0

    def set_knn_active(self, active: bool) -> None:
        """Put the NN loss in the total (True) or keep it out (False, warm-up).

        Called by :class:`~revisit_ssl.engine.hooks.KNNWarmupHook` before every iteration;
        call it yourself when stepping the model outside a runner.
        """
        self._knn_active = bool(active)

    def knn_active(self) -> bool:
        """Whether the NN loss enters the total in this step."""
        if not self.head.use_knn:
            return False
        if self._knn_active is not None:
            return self._knn_active
        if not self.has_knn_warmup:
            return True  # no warm-up: on from the first step, nothing to switch
        raise UnswitchedWarmupError(self.unswitched_warmup_message())

    def unswitched_warmup_message(self) -> str:
        """What to do when a warm-up is configured and no hook switches the NN loss on."""
        warmup = (f'knn_warmup_iters={self.knn_warmup_iters}'
                  if self.knn_warmup_iters is not None else
                  f'knn_warmup_epochs={self.knn_warmup_epochs}')
        return (
            f'KNNMoCo has {warmup} but nothing switches the NN loss on after '
            f'it: KNNWarmupHook is not among the runner\'s hooks. Keep '
            f"default_hooks.knn_warmup=dict(type='KNNWarmupHook') (configs/"
            f'_base_/default_runtime.py has it; a config that replaces '
            f'default_hooks with _delete_=True must list it again), or set '
            f'model.knn_warmup_epochs=0 to use the NN loss from the first '
            f'step. Stepping the model outside a runner: call '
            f'model.set_knn_active(True|False).')

    def _check_views(self, inputs: List[torch.Tensor]) -> None:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(
                'KNNMoCo needs a list of views [query, key, small_1..n]; '
                'check that the pipeline produces multiple views and the '
                "dataloader uses collate_fn=dict(type='default_collate')")
        num_small = len(inputs) - 2
        if self.num_small_crops is not None and num_small != self.num_small_crops:
            raise ValueError(
                f'The pipeline delivered {len(inputs)} views (query, key and '
                f'{num_small} small crops) but the model was built for '
                f'num_small_crops={self.num_small_crops}. Make the pipeline\'s '
                f'num_small and model.num_small_crops agree.')

    def _encode_queries(
            self, inputs: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Online encoder: ``(q, h)`` for the query view then all small views."""
        views = [inputs[0]]
        if len(inputs) > 2:
            # one forward for all small crops: their BN statistics are their own
            views.append(torch.cat(inputs[2:], dim=0))
        projections, backbone_feats = [], []
        for view in views:
            feats = self.backbone(view)
            projections.append(F.normalize(self.neck(feats)[0], dim=1))
            backbone_feats.append(_pooled(feats).detach())
        return torch.cat(projections), torch.cat(backbone_feats)

    @torch.no_grad()
    def _encode_keys(self,
                     im_key: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """EMA update, then the momentum encoder: ``(k, hk)`` for the key view."""
        self.momentum_encoder.update_parameters(
            nn.Sequential(self.backbone, self.neck))
        distributed = get_world_size() > 1
        if distributed:
            im_key, idx_unshuffle = batch_shuffle_ddp(im_key)
        key_backbone, key_neck = self.momentum_encoder.module
        feats = key_backbone(im_key)
        key = F.normalize(key_neck(feats)[0], dim=1)
        key_pooled = _pooled(feats)
        if distributed:
            key = batch_unshuffle_ddp(key, idx_unshuffle)
            key_pooled = batch_unshuffle_ddp(key_pooled, idx_unshuffle)
        return key, key_pooled

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Losses of one training step.

        Args:
            inputs (list[torch.Tensor]): Views ``[query, key, small_1..n]``, each ``(B, C, H, W)``;
                the small views may have another size than the large ones.
            data_samples (list[DataSample]): Unused (self-supervised).

        Returns:
            dict[str, torch.Tensor]: ``loss_inst``, ``loss_knn`` (weighted, 0 during warm-up) and
            ``knn_raw`` (unweighted, logged only); see :meth:`DualQueueHead.loss`.
        """
        self._check_views(inputs)
        self.head.memory.check_global_batch(inputs[1].shape[0], get_world_size())
        query, query_backbone = self._encode_queries(inputs)
        key, key_backbone = self._encode_keys(inputs[1])
        losses = self.head.loss(
            query,
            key,
            query_backbone,
            knn_active=self.knn_active(),
            key_backbone=key_backbone)
        self.head.memory.enqueue(key, key_backbone)
        return losses
