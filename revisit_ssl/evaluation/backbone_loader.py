"""Build a frozen backbone from a pretraining config and load its weights from a checkpoint.

Works for any mmpretrain self-supervised config with a ``model.backbone`` (KNNMoCo, MoCo, ...)
and three kinds of weight file:

* our mmengine checkpoints (``state_dict`` with ``backbone.*``, and the momentum encoder under
  ``momentum_encoder.module.0.*``; mmpretrain's MoCo keeps it under ``encoder_k.module.0.*``);
* backbone-only files (keys without a prefix, as a converter writes them; torchvision ResNet
  names match mmpretrain's ``ResNet``, and a classifier ``fc.*`` is ignored);
* ``'random'``: no file, the backbone's own initialisation (the baseline every probe should
  beat).
"""
import copy
import logging
import os.path as osp
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log

__all__ = [
    'ENCODER_PREFIXES', 'RANDOM_INIT', 'load_config', 'load_checkpoint_file',
    'backbone_state_dict', 'build_backbone', 'load_backbone'
]

#: Key prefixes of each encoder's backbone, in the order they are tried.
ENCODER_PREFIXES: Dict[str, Tuple[str, ...]] = {
    'online': ('backbone.', ),
    'momentum': ('momentum_encoder.module.0.', 'encoder_k.module.0.',
                 'target_net.module.0.'),
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
    """Load a checkpoint with torch's safe (``weights_only``) unpickler."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'checkpoint {path!r} does not exist (pass a .pth written by '
            f'training, a converted backbone file, or {RANDOM_INIT!r} for the '
            'random-init baseline)')
    import revisit_ssl  # noqa: F401  allow-lists the types in our checkpoints
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle errors name the offending global
        raise RuntimeError(
            f'could not load {path!r} with weights_only=True: {err}. A type '
            'missing from the allow-list belongs in '
            'revisit_ssl/utils/checkpoint.py') from err
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path!r} holds a {type(checkpoint).__name__}, not a '
                        'state dict or an mmengine checkpoint')
    return checkpoint


def backbone_state_dict(checkpoint: dict,
                        encoder: str = 'online') -> Tuple[dict, str]:
    """The backbone weights of one encoder, with the prefix stripped.

    Args:
        checkpoint (dict): An mmengine checkpoint (with ``state_dict``) or a bare state dict.
        encoder (str): ``'online'`` (the query encoder, the one papers evaluate) or
            ``'momentum'`` (the EMA key encoder). Defaults to 'online'.

    Returns:
        tuple[dict, str]: The state dict and the prefix it came from (``''`` for a
        backbone-only file).
    """
    if encoder not in ENCODER_PREFIXES:
        raise ValueError(f'encoder must be one of {sorted(ENCODER_PREFIXES)}, '
                         f'got {encoder!r}')
    state = checkpoint.get('state_dict', checkpoint)
    for prefix in ENCODER_PREFIXES[encoder]:
        picked = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
        if picked:
            return picked, prefix
    known = [p for ps in ENCODER_PREFIXES.values() for p in ps]
    if encoder == 'online' and not any(
            k.startswith(p) for k in state for p in known):
        return dict(state), ''  # a converted, backbone-only file
    raise KeyError(
        f'no {encoder} backbone in the checkpoint: none of the keys starts '
        f'with {ENCODER_PREFIXES[encoder]} (first keys: {list(state)[:5]}); '
        + ('use --encoder online' if encoder == 'momentum' else ''))


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
        state, prefix = backbone_state_dict(ckpt, encoder)
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
        ignored = sorted(k for k in state if k not in expected)
        if ignored:
            print_log(
                f'ignoring {len(ignored)} checkpoint keys the backbone does '
                f'not have, e.g. {ignored[:5]}', logger='current')
        backbone.load_state_dict(
            {k: v
             for k, v in state.items() if k in expected}, strict=False)
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
