"""Checkpoint key layouts, and the one safe checkpoint loader.

Where a file keeps its backbone weights is written here once, for everything that reads one:
the evaluation tools (:mod:`revisit_ssl.evaluation.backbone_loader`), the converter
(``tools/model_converters/extract_backbone.py``), the downstream init check
(:class:`revisit_ssl.downstream.PretrainedInitCheckHook`) and ``KNNMoCo``'s ``load_from``.

Known layouts (:data:`LAYOUTS`, most specific first):

* two-encoder pretraining checkpoints: our ``KNNMoCo``, mmpretrain's ``DenseCL``, ``MoCo``,
  ``MoCoV3`` and ``BYOL`` (the momentum copy is an mmengine ``ExponentialMovingAverage`` of
  ``nn.Sequential(backbone, neck)``, hence ``<name>.module.0.``), and the DataParallel
  checkpoints of the official MoCo code base, which the paper's release
  (`Revisiting Contrastive Methods for Unsupervised Learning of Visual Representations
  <https://arxiv.org/abs/2106.05967>`_) also writes: ``module.encoder_q.`` /
  ``module.encoder_k.``, whose ``fc.*`` is the projection MLP, not backbone;
* one-encoder files: ``backbone.*`` (an mmpretrain classifier, a one-encoder self-supervised
  model, and the converter's default output) and bare keys (torchvision, ``--format
  torchvision``).

A file loads with torch's safe unpickler only (:func:`load_checkpoint_file`); the data-only
types mmengine stores in ``meta`` are allow-listed in :mod:`revisit_ssl.utils.checkpoint`.
"""
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import (Dict, Iterable, List, NamedTuple, Optional, Sequence,
                    Tuple)

import torch

__all__ = [
    'ENCODERS', 'CheckpointLayout', 'KNN_MOCO', 'MMPRETRAIN_DENSECL', 'MMPRETRAIN_MOCO',
    'MMPRETRAIN_MOCOV3', 'MMPRETRAIN_BYOL', 'RELEASE_KNN_MOCO', 'OFFICIAL_MOCO',
    'PREFIXED_BACKBONE', 'BARE_BACKBONE', 'PRETRAINING_LAYOUTS', 'LAYOUTS',
    'CheckpointLoadError', 'LayoutError', 'EncoderWeights', 'load_checkpoint_file',
    'state_dict_of', 'detect_layout', 'extract_encoder', 'pretrained_init_state_dict',
    'resnet_depth', 'resnet_widths'
]

#: The two encoders of a momentum-contrast checkpoint: the online (query) encoder, the one
#: papers evaluate, and the momentum (key) encoder, its EMA copy.
ENCODERS: Tuple[str, ...] = ('online', 'momentum')


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a checkpoint keeps its backbone(s).

    Args:
        name (str): Human-readable name (printed by the converter).
        online_prefix (str): Key prefix of the online encoder's backbone (``''``: bare keys).
        momentum_prefix (str, optional): Key prefix of the momentum encoder's backbone;
            None for a file with one encoder.
        marker (str, optional): A key whose presence tells this layout apart from another
            one with the same prefixes.
        head_keys (tuple[str]): Key prefixes, relative to an encoder prefix, that belong to
            the encoder but not to its backbone (the official code's projection MLP ``fc.*``).
    """
    name: str
    online_prefix: str
    momentum_prefix: Optional[str] = None
    marker: Optional[str] = None
    head_keys: Tuple[str, ...] = ()

    @property
    def is_pretraining(self) -> bool:
        """Whether the file holds both encoders of a momentum-contrast pretraining run."""
        return self.momentum_prefix is not None

    def prefix(self, encoder: str = 'online') -> Optional[str]:
        """The key prefix of ``encoder``'s backbone (None if the file has no such encoder)."""
        _check_encoder(encoder)
        return self.online_prefix if encoder == 'online' else self.momentum_prefix

    def revise_keys(self, encoder: str = 'online') -> List[Tuple[str, str]]:
        """``revise_keys`` for :func:`mmengine.runner.load_checkpoint` that strip the prefix."""
        prefix = self.prefix(encoder)
        return [(f'^{re.escape(prefix)}', '')] if prefix else []

    def matches(self, keys: Sequence[str]) -> bool:
        """Whether ``keys`` (a state dict's) are in this two-encoder layout."""
        if not self.is_pretraining:
            return False
        return (any(k.startswith(self.online_prefix) for k in keys)
                and any(k.startswith(self.momentum_prefix) for k in keys)
                and (self.marker is None or self.marker in keys))


#: This project's ``KNNMoCo``: ``DualQueueHead`` holds the key queue (and the kNN backbone
#: queue when ``use_knn``); the momentum encoder is ``ExponentialMovingAverage``.
KNN_MOCO = CheckpointLayout('kNN-MoCo (revisit_ssl KNNMoCo)', 'backbone.',
                            'momentum_encoder.module.0.', marker='head.key_queue')
#: mmpretrain ``DenseCL``: MoCo's layout plus the dense queue ``queue2``.
MMPRETRAIN_DENSECL = CheckpointLayout('DenseCL (mmpretrain DenseCL)', 'backbone.',
                                      'encoder_k.module.0.', marker='queue2')
#: mmpretrain ``MoCo`` (v1 / v2).
MMPRETRAIN_MOCO = CheckpointLayout('MoCo (mmpretrain MoCo)', 'backbone.',
                                   'encoder_k.module.0.')
#: mmpretrain ``MoCoV3``: the prefixes of ``KNNMoCo``, without the queue.
MMPRETRAIN_MOCOV3 = CheckpointLayout('MoCo v3 (mmpretrain MoCoV3)', 'backbone.',
                                     'momentum_encoder.module.0.')
#: mmpretrain ``BYOL``: the target network.
MMPRETRAIN_BYOL = CheckpointLayout('BYOL (mmpretrain BYOL)', 'backbone.',
                                   'target_net.module.0.')
#: The paper's release (official MoCo code + the kNN backbone queue ``queue_backbone``).
RELEASE_KNN_MOCO = CheckpointLayout(
    'kNN-MoCo (official release, arXiv 2106.05967)', 'module.encoder_q.',
    'module.encoder_k.', marker='module.queue_backbone', head_keys=('fc.', ))
#: The official MoCo code base (facebookresearch/moco), DataParallel-wrapped.
OFFICIAL_MOCO = CheckpointLayout('MoCo (official facebookresearch/moco code)',
                                 'module.encoder_q.', 'module.encoder_k.',
                                 head_keys=('fc.', ))
#: One encoder under ``backbone.``: an mmpretrain classifier, a one-encoder self-supervised
#: model (SimCLR, SimSiam, ...), the converter's default output. What mmengine's
#: ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` reads.
PREFIXED_BACKBONE = CheckpointLayout(
    'one backbone under backbone. (mmpretrain classifier, converted file)', 'backbone.')
#: One encoder with bare keys (``conv1.weight``, ...): torchvision, ``--format torchvision``.
#: Anything else this file does not recognise reads as this layout too; a loader then finds
#: the backbone's keys missing and names what the file holds.
BARE_BACKBONE = CheckpointLayout('bare backbone keys (torchvision)', '')

#: Two-encoder layouts, most specific first (a marker tells apart layouts sharing prefixes).
PRETRAINING_LAYOUTS: Tuple[CheckpointLayout, ...] = (
    KNN_MOCO, MMPRETRAIN_DENSECL, MMPRETRAIN_MOCO, MMPRETRAIN_MOCOV3, MMPRETRAIN_BYOL,
    RELEASE_KNN_MOCO, OFFICIAL_MOCO)
#: Every layout :func:`detect_layout` returns, in the order it tries them.
LAYOUTS: Tuple[CheckpointLayout, ...] = PRETRAINING_LAYOUTS + (PREFIXED_BACKBONE,
                                                               BARE_BACKBONE)


class CheckpointLoadError(RuntimeError):
    """torch's safe unpickler refused the file; the message names the fix."""


class LayoutError(KeyError):
    """The file does not hold the encoder asked for; the message says what it holds."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ''


class EncoderWeights(NamedTuple):
    """One encoder's backbone, as :func:`extract_encoder` returns it.

    Attributes:
        backbone (OrderedDict): The backbone tensors, prefix stripped (``conv1.weight``, ...).
        head (OrderedDict): Tensors under the encoder prefix that are not backbone (the
            official code's ``fc.*`` projection MLP), prefix stripped.
        layout (CheckpointLayout): The file's layout.
        prefix (str): The prefix the backbone came from (``''`` for bare keys).
    """
    backbone: 'OrderedDict[str, torch.Tensor]'
    head: 'OrderedDict[str, torch.Tensor]'
    layout: CheckpointLayout
    prefix: str


def _check_encoder(encoder: str) -> None:
    if encoder not in ENCODERS:
        raise ValueError(f'encoder must be one of {list(ENCODERS)}, got {encoder!r}')


_DEFAULT_PASS = ('a .pth written by tools/train.py (work_dirs/<config>/epoch_<N>.pth) '
                 'or a backbone file written by tools/model_converters/extract_backbone.py')


def load_checkpoint_file(path: str, what_to_pass: str = _DEFAULT_PASS) -> dict:
    """Load a checkpoint with torch's safe (``weights_only=True``) unpickler, onto the CPU.

    Args:
        path (str): The checkpoint file.
        what_to_pass (str): What the caller accepts, for the message when ``path`` does not
            exist.

    Returns:
        dict: The checkpoint (an mmengine ``{'meta', 'state_dict', ...}`` dict or a bare state
        dict).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says what to pass).
        CheckpointLoadError: The safe unpickler refused a type (the message names
            ``revisit_ssl/utils/checkpoint.py``, where data-only types are allow-listed).
        TypeError: The file holds something other than a dict.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist (pass {what_to_pass})')
    # importing this module imported revisit_ssl, which allow-listed our checkpoint types
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle errors name the offending global
        raise CheckpointLoadError(
            f'could not load {path!r} with weights_only=True: {err}. A data-only type '
            'missing from the allow-list belongs in revisit_ssl/utils/checkpoint.py; we '
            'never unpickle arbitrary objects. For a file from a source you trust, re-save '
            'its tensors alone: torch.save({"state_dict": ckpt["state_dict"]}, '
            '"clean.pth").') from err
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path!r} holds a {type(checkpoint).__name__}, not a checkpoint '
                        f'dict (a state dict or an mmengine checkpoint); pass {what_to_pass}')
    return checkpoint


def state_dict_of(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The state dict of an mmengine / official-MoCo checkpoint, or ``checkpoint`` itself.

    The same rule as mmengine's loaders: a ``'state_dict'`` entry if there is one.
    """
    state = checkpoint.get('state_dict', checkpoint)
    return state if isinstance(state, dict) else {}


def detect_layout(state_dict: Iterable[str]) -> CheckpointLayout:
    """The layout of a state dict (or of its keys); :data:`BARE_BACKBONE` if none is known.

    Args:
        state_dict (dict | Iterable[str]): A state dict, or its keys.
    """
    keys = list(state_dict)
    for layout in PRETRAINING_LAYOUTS:
        if layout.matches(keys):
            return layout
    if any(k.startswith(PREFIXED_BACKBONE.online_prefix) for k in keys):
        return PREFIXED_BACKBONE
    return BARE_BACKBONE


def extract_encoder(state_dict: Dict[str, torch.Tensor],
                    encoder: str = 'online',
                    layout: Optional[CheckpointLayout] = None,
                    path: str = 'the checkpoint') -> EncoderWeights:
    """One encoder's backbone tensors, prefix stripped.

    Args:
        state_dict (dict): The file's state dict (see :func:`state_dict_of`).
        encoder (str): ``'online'`` or ``'momentum'``. Defaults to 'online'.
        layout (CheckpointLayout, optional): Defaults to :func:`detect_layout`'s.
        path (str): Name of the file, for messages.

    Raises:
        LayoutError: The file has no ``encoder`` (a one-encoder file asked for its momentum
            encoder), naming the layout found.
    """
    _check_encoder(encoder)
    layout = layout or detect_layout(state_dict)
    prefix = layout.prefix(encoder)
    if prefix is None:
        raise LayoutError(
            f'no {encoder} backbone in {path}: it holds one encoder ({layout.name}; '
            f'first keys {list(state_dict)[:5]}); only a pretraining checkpoint (KNNMoCo, MoCo, '
            'BYOL, ...) has a momentum encoder. Take the online encoder')
    backbone, head = OrderedDict(), OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(prefix):
            rel = key[len(prefix):]
            is_head = bool(layout.head_keys) and rel.startswith(layout.head_keys)
            (head if is_head else backbone)[rel] = value
    return EncoderWeights(backbone, head, layout, prefix)


def pretrained_init_state_dict(state_dict: Dict[str, torch.Tensor],
                               prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """What mmengine's ``init_cfg=dict(type='Pretrained', prefix=prefix)`` gives the module.

    Mirrors :class:`mmengine.model.PretrainedInit`: without a prefix, ``load_checkpoint``'s
    default ``revise_keys`` strips a leading ``module.``; with one, only the keys under it,
    stripped (mmengine appends the ``.``). ``prefix=''`` is read as no prefix.
    """
    if not prefix:
        return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


#: (bottleneck blocks, blocks per stage) -> depth of the standard ResNets.
_RESNET_DEPTHS = {
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
}


def resnet_depth(backbone: Dict[str, torch.Tensor]) -> Optional[int]:
    """The ResNet depth whose block counts match a bare ResNet state dict (None if unusual)."""
    blocks = tuple(
        len({k.split('.')[1] for k in backbone if k.startswith(f'layer{stage}.')})
        for stage in range(1, 5))
    bottleneck = any('.conv3.' in k for k in backbone)
    return _RESNET_DEPTHS.get((bottleneck, blocks))


def resnet_widths(backbone: Dict[str, torch.Tensor]) -> Tuple[int, int, int]:
    """``(stem_channels, base_channels, feature_dim)`` of a bare ResNet state dict.

    torchvision's and the standard mmpretrain / mmseg / mmdet ResNets have 64 / 64 and a
    512-d (ResNet-18/34) or 2048-d (ResNet-50+) feature; the demo backbone
    (configs/knn_moco_demo.py) has 32 / 32 and 256-d, which only a ResNet built with
    ``stem_channels=32, base_channels=32`` can load.
    """
    stem = int(backbone['conv1.weight'].shape[0])
    base = int(backbone['layer1.0.conv1.weight'].shape[0])
    last_stage = max(int(k[5]) for k in backbone if k.startswith('layer'))
    last_block = max(int(k.split('.')[1]) for k in backbone
                     if k.startswith(f'layer{last_stage}.'))
    bottleneck = f'layer{last_stage}.{last_block}.bn3.weight'
    basic = f'layer{last_stage}.{last_block}.bn2.weight'
    feature = backbone[bottleneck if bottleneck in backbone else basic]
    return stem, base, int(feature.shape[0])
