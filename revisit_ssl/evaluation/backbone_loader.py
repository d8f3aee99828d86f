"""Build a frozen backbone from a pretraining config and load its weights from a checkpoint.

Works for any mmpretrain self-supervised config with a ``model.backbone`` (KNNMoCo, MoCo, ...)
and every file :mod:`revisit_ssl.utils.checkpoint_layouts` knows:

* pretraining checkpoints (ours: ``backbone.*`` and the momentum encoder under
  ``momentum_encoder.module.0.*``; mmpretrain's MoCo / BYOL; the official code's and the
  paper release's ``module.encoder_q.*`` / ``module.encoder_k.*``);
* one-encoder files: ``backbone.*`` (the converter's output, an mmpretrain classifier) or bare
  keys (torchvision ResNet names match mmpretrain's ``ResNet``; a classifier ``fc.*`` is
  ignored);
* ``'random'``: no file, the backbone's own initialisation (the baseline every probe should
  beat).
"""
import copy
import logging
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from revisit_ssl.utils import checkpoint_layouts as layouts
from revisit_ssl.utils.checkpoint_layouts import LayoutError, state_dict_of

__all__ = [
    'ENCODER_PREFIXES', 'RANDOM_INIT', 'load_config', 'load_checkpoint_file',
    'backbone_state_dict', 'build_backbone', 'load_backbone'
]

#: Key prefixes of each encoder's backbone in the known pretraining layouts (derived from
#: :data:`revisit_ssl.utils.checkpoint_layouts.LAYOUTS`; kept for callers that list them).
ENCODER_PREFIXES: Dict[str, Tuple[str, ...]] = {
    encoder: tuple(dict.fromkeys(
        lay.prefix(encoder) for lay in layouts.LAYOUTS if lay.prefix(encoder)))
    for encoder in layouts.ENCODERS
}

#: CHECKPOINT value that skips loading and keeps the random initialisation.
RANDOM_INIT = 'random'


def load_config(config: Union[str, Config, dict]) -> Config:
    """A :class:`Config` from a path, a Config or a plain dict."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config(config)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    return Config.fromfile(config)


def load_checkpoint_file(path: str) -> dict:
    """Load a checkpoint with torch's safe (``weights_only``) unpickler.

    :func:`revisit_ssl.utils.checkpoint_layouts.load_checkpoint_file`, whose missing-file
    message names what the evaluation tools take.
    """
    return layouts.load_checkpoint_file(
        path, what_to_pass='a .pth written by training, a converted backbone file, or '
        f'{RANDOM_INIT!r} for the random-init baseline')


def backbone_state_dict(checkpoint: dict,
                        encoder: str = 'online') -> Tuple[dict, str]:
    """The backbone weights of one encoder, with the prefix stripped.

    Args:
        checkpoint (dict): An mmengine checkpoint (with ``state_dict``) or a bare state dict.
        encoder (str): ``'online'`` (the query encoder, the one papers evaluate) or
            ``'momentum'`` (the EMA key encoder). Defaults to 'online'.

    Returns:
        tuple[dict, str]: The state dict and the prefix it came from (``''`` for a
        backbone-only file with bare keys). Keys under the encoder that are not backbone (the
        official code's ``fc.*`` projection MLP) are left out.
    """
    weights = _encoder_weights(checkpoint, encoder)
    return dict(weights.backbone), weights.prefix


def _encoder_weights(checkpoint: dict, encoder: str) -> layouts.EncoderWeights:
    try:
        return layouts.extract_encoder(state_dict_of(checkpoint), encoder)
    except LayoutError as err:
        raise LayoutError(f'{err} (use --encoder online)') from None


def build_backbone(cfg: Config,
                   overrides: Optional[dict] = None,
                   init_weights: bool = False) -> nn.Module:
    """Build ``cfg.model.backbone`` (with ``overrides`` merged in) without pretrained loading.

    An ``init_cfg`` of type ``Pretrained`` is dropped: the weights come from the checkpoint,
    and it could point at a URL these machines cannot reach.

    Args:
        cfg (Config): The pretraining config.
        overrides (dict, optional): Backbone config keys to change.
        init_weights (bool): Run the backbone's ``init_weights`` (its configured random
            initialisation; pointless when a checkpoint is loaded next). Defaults to False.
    """
    from mmpretrain.registry import MODELS
    model_cfg = cfg.get('model')
    if model_cfg is None or model_cfg.get('backbone') is None:
        raise KeyError('the config has no model.backbone; pass a '
                       'pretraining config such as configs/knn_moco_demo.py')
    backbone_cfg = copy.deepcopy(dict(model_cfg['backbone']))
    init_cfg = backbone_cfg.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        backbone_cfg.pop('init_cfg')
    backbone_cfg.update(overrides or {})
    backbone = MODELS.build(backbone_cfg)
    if init_weights and hasattr(backbone, 'init_weights'):
        # mmengine logs one INFO entry per parameter here; keep the tools' output readable
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            backbone.init_weights()
        finally:
            logger.setLevel(level)
    return backbone


def load_backbone(config: Union[str, Config, dict],
                  checkpoint: str,
                  encoder: str = 'online',
                  overrides: Optional[dict] = None,
                  device: Union[str, torch.device] = 'cpu',
                  seed: int = 0) -> Tuple[nn.Module, dict]:
    """A frozen backbone (eval mode, no gradients) with the checkpoint's weights.

    Args:
        config (str | Config | dict): The pretraining config.
        checkpoint (str): A checkpoint path, or ``'random'`` for the random initialisation.
        encoder (str): ``'online'`` or ``'momentum'``. Defaults to 'online'.
        overrides (dict, optional): Backbone config keys to change, e.g. strides and dilations.
        device (str | torch.device): Where to put the backbone. Defaults to 'cpu'.
        seed (int): Seed of the random initialisation for ``checkpoint='random'``, so the
            baseline is reproducible (the global RNG is left as it was). Defaults to 0.

    Returns:
        tuple[nn.Module, dict]: The backbone and a description (``checkpoint``, ``encoder``,
        ``prefix``, ``epoch``, ``iter``, ``ignored_keys``).
    """
    cfg = load_config(config)
    info = dict(checkpoint=checkpoint, encoder=encoder)
    if checkpoint == RANDOM_INIT:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = build_backbone(cfg, overrides, init_weights=True)
        info['seed'] = seed
    else:
        backbone = build_backbone(cfg, overrides)
        ckpt = load_checkpoint_file(checkpoint)
        weights = _encoder_weights(ckpt, encoder)
        state, prefix = weights.backbone, weights.prefix
        expected = backbone.state_dict()
        missing = [
            k for k in expected
            if k not in state and not k.endswith('num_batches_tracked')
        ]
        if missing:
            raise KeyError(
                f'{checkpoint!r} ({encoder} encoder, prefix {prefix!r}) lacks '
                f'{len(missing)} backbone weights, e.g. {missing[:5]}: it '
                'does not match model.backbone of the config')
        ignored = sorted([k for k in state if k not in expected] + list(weights.head))
        if ignored:
            print_log(
                f'ignoring {len(ignored)} checkpoint keys the backbone does '
                f'not have, e.g. {ignored[:5]}', logger='current')
        # mmengine's loader strips the encoder prefix (revise_keys) and loads the file's
        # tensors of this backbone; strict, so a shape mismatch raises instead of a warning
        fits = OrderedDict(
            (k, v) for k, v in state_dict_of(ckpt).items()
            if k.startswith(prefix) and k[len(prefix):] in expected)
        _load_checkpoint_to_model(
            backbone,
            dict(state_dict=fits),
            strict=True,
            revise_keys=weights.layout.revise_keys(encoder))
        meta = ckpt.get('meta', {}) if isinstance(ckpt.get('meta'),
                                                   dict) else {}
        info.update(
            prefix=prefix,
            epoch=meta.get('epoch'),
            iter=meta.get('iter'),
            ignored_keys=ignored)
    backbone.to(device).eval()
    for param in backbone.parameters():
        param.requires_grad_(False)
    return backbone, info
