"""Extract the ResNet backbone of a kNN-MoCo / MoCo checkpoint for fine-tuning.

Our own pretraining checkpoints need no conversion: the downstream configs read them with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``. This tool is for
the momentum encoder, other projects' checkpoints and torchvision.

The default output, ``{'meta', 'state_dict'}`` with keys ``backbone.conv1.weight``, ...
(the layout of mmpretrain classifiers and of our pretraining checkpoints), loads through
``prefix='backbone.'`` into MMSegmentation's and MMDetection's ``type='ResNet'`` backbones
(and into the C4 shared head of MMDetection, whose ``layer4`` keys it also holds) with no
missing and no unexpected keys, and into ``KNNMoCo`` with ``load_from`` (both backbones);
``--format torchvision`` writes a bare state dict for ``torchvision.models.resnet50()``
(everything but ``fc``).

Accepted inputs: the two-encoder layouts of :mod:`revisit_ssl.utils.checkpoint_layouts`
(detected from the keys): kNN-MoCo (this project), mmpretrain ``MoCo`` / ``DenseCL`` /
``MoCoV3`` (with a ResNet) / ``BYOL``, and the official MoCo code base with the checkpoints
released with the paper (arXiv 2106.05967), ``module.encoder_q.*`` / ``module.encoder_k.*``
(their ``fc.*`` projection MLP is left out).

Examples::

    python tools/model_converters/extract_backbone.py \\
        work_dirs/knn_moco_coco/epoch_800.pth checkpoints/knn-moco_r50_backbone.pth
    python tools/model_converters/extract_backbone.py IN.pth OUT.pth --momentum-encoder
    python tools/model_converters/extract_backbone.py IN.pth OUT.pth --format torchvision
"""
import argparse
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch

# torch >= 2.6 loads with weights_only=True; importing revisit_ssl (first, as the parent of
# revisit_ssl.utils) allow-lists the data-only types mmengine stores in a checkpoint's ``meta``.
from revisit_ssl.utils.checkpoint_layouts import (
    PREFIXED_BACKBONE, PRETRAINING_LAYOUTS, CheckpointLayout, CheckpointLoadError,
    detect_layout as _detect_layout, extract_encoder, load_checkpoint_file, resnet_depth,
    resnet_widths)

__all__ = [
    'ConversionError', 'FORMATS', 'detect_layout', 'extract_backbone', 'resnet_depth',
    'resnet_widths', 'convert', 'format_summary', 'main'
]

#: Output formats: ``backbone.``-prefixed keys in an mmengine checkpoint (default), or the bare
#: state dict torchvision loads.
FORMATS = ('openmmlab', 'torchvision')


class ConversionError(ValueError):
    """The input is not a checkpoint this tool can convert; the message says why."""


# Key names of a torchvision-style ResNet (== mmpretrain / mmseg / mmdet ``ResNet``): the
# stem, then layerS.B.{conv,bn}N.* and layerS.B.downsample.{0,1}.*
_RESNET_KEY = re.compile(r'^(conv1\.weight|bn1\.[a-z_]+|'
                         r'layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.[a-z_]+|'
                         r'downsample\.[01]\.[a-z_]+))$')
# A deep stem (ResNetV1c / V1d) or a ViT cannot go into ``type='ResNet'``.
_FOREIGN_BACKBONE_HINTS = {
    'stem.': 'a deep stem (ResNetV1c / ResNetV1d)',
    'patch_embed.': 'a vision transformer',
    'cls_token': 'a vision transformer',
}
# Parameters (as opposed to BN running statistics) for the summary.
_BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')


def _top_level_prefixes(keys: Sequence[str]) -> str:
    counts: Dict[str, int] = {}
    for key in keys:
        head = key.split('.')[0]
        counts[head] = counts.get(head, 0) + 1
    return ', '.join(f'{k} ({v} keys)' for k, v in sorted(counts.items()))


def _unwrap(checkpoint: object, path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, meta)`` of an mmengine / official-MoCo / bare checkpoint."""
    if not isinstance(checkpoint, dict):
        raise ConversionError(
            f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict; '
            'pass the .pth file written by the pretraining run '
            '(e.g. work_dirs/<config>/epoch_800.pth).')
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'),
                                                dict) else {}
    if 'state_dict' in checkpoint and isinstance(checkpoint['state_dict'],
                                                 dict):
        state_dict = checkpoint['state_dict']
        # the official MoCo code stores epoch / arch next to the state dict, not in meta
        meta = dict(meta)
        for key in ('epoch', 'iter', 'arch'):
            if key in checkpoint and key not in meta:
                meta[key] = checkpoint[key]
    else:
        state_dict = checkpoint
    if not state_dict or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ConversionError(
            f'{path} has no state dict of tensors (top-level keys: '
            f'{sorted(checkpoint)[:10]}); pass the checkpoint written by the '
            'pretraining run.')
    return state_dict, meta


def detect_layout(state_dict: Dict[str, torch.Tensor],
                  path: str = 'the checkpoint') -> CheckpointLayout:
    """Find which pretraining method wrote ``state_dict``.

    Raises:
        ConversionError: If it is not a two-encoder pretraining checkpoint, naming what was
            found.
    """
    layout = _detect_layout(state_dict)
    if layout.is_pretraining:
        return layout
    expected = '; '.join(f'{lay.name}: {lay.online_prefix}* + '
                         f'{lay.momentum_prefix}*' for lay in PRETRAINING_LAYOUTS)
    raise ConversionError(
        f'{path} is not a kNN-MoCo / MoCo checkpoint: no online + momentum encoder pair '
        f'found. Expected one of [{expected}]; found top-level prefixes: '
        f'{_top_level_prefixes(list(state_dict))}. A supervised or already-converted '
        'checkpoint can be used as it is (init_cfg=dict(type="Pretrained", checkpoint=..., '
        f'prefix="{PREFIXED_BACKBONE.online_prefix}") for backbone.* keys, no prefix for '
        'bare ones).')


def extract_backbone(state_dict: Dict[str, torch.Tensor],
                     layout: CheckpointLayout,
                     momentum_encoder: bool = False,
                     path: str = 'the checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """Pick one encoder's ResNet tensors out of a pretraining state dict.

    Args:
        state_dict (dict): Full state dict of the pretraining model.
        layout (CheckpointLayout): From :func:`detect_layout`.
        momentum_encoder (bool): Take the momentum (key) encoder instead of the online one.
        path (str): Name of the input, for error messages.

    Returns:
        OrderedDict: Keys like ``conv1.weight``, ``layer1.0.bn1.running_mean``.

    Raises:
        ConversionError: If the encoder is not a plain-stem ResNet.
    """
    # the layout's head keys (the official code's projection MLP fc.*) are not backbone
    weights = extract_encoder(state_dict, 'momentum' if momentum_encoder else 'online',
                              layout, path)
    prefix = weights.prefix
    encoder = OrderedDict((k, v.detach().clone()) for k, v in weights.backbone.items())
    for hint, what in _FOREIGN_BACKBONE_HINTS.items():
        if any(k.startswith(hint) for k in encoder):
            raise ConversionError(
                f'The encoder under {prefix!r} in {path} is {what}, not the plain-stem '
                "ResNet the downstream configs build (type='ResNet'); convert it with "
                "the tools of its own model family instead.")
    foreign = [k for k in encoder if not _RESNET_KEY.match(k)]
    if foreign:
        raise ConversionError(
            f'The encoder under {prefix!r} in {path} has keys a ResNet does not have, '
            f'e.g. {foreign[:5]}; it is not a ResNet backbone this tool can convert.')
    if 'conv1.weight' not in encoder or not any(
            k.startswith('layer1.') for k in encoder):
        raise ConversionError(
            f'The encoder under {prefix!r} in {path} lacks the ResNet stem / first '
            f'stage (conv1.weight, layer1.*); found {list(encoder)[:5]}.')
    return encoder


def _plain(value: object) -> object:
    """Numbers / strings only, so the output loads with ``weights_only=True`` anywhere."""
    if hasattr(value, 'item') and callable(value.item):
        value = value.item()  # numpy / torch scalars
    return value if isinstance(value, (int, float, str, bool)) else None


def convert(src: str,
            dst: str,
            momentum_encoder: bool = False,
            fmt: str = 'openmmlab') -> dict:
    """Read ``src``, write the backbone of one encoder to ``dst``.

    Args:
        src (str): Pretraining checkpoint.
        dst (str): Output path; parent folders are created.
        momentum_encoder (bool): Extract the momentum encoder instead of the online one.
        fmt (str): ``'openmmlab'``: ``{'meta': ..., 'state_dict': {'backbone.conv1.weight':
            ...}}`` for ``init_cfg=dict(type='Pretrained', checkpoint=dst,
            prefix='backbone.')`` (the layout of our pretraining checkpoints and mmpretrain
            classifiers); ``'torchvision'``: the bare state dict for
            ``torchvision.models.resnetXX().load_state_dict``.

    Returns:
        dict: Summary (layout, encoder, tensors, parameters, depth, source epoch / iter).
    """
    if fmt not in FORMATS:
        raise ConversionError(
            f'unknown format {fmt!r}; use one of {", ".join(map(repr, FORMATS))}')
    try:
        checkpoint = load_checkpoint_file(
            src, what_to_pass='the .pth written by the pretraining run, e.g. '
            'work_dirs/<config>/epoch_800.pth')
    except (FileNotFoundError, CheckpointLoadError, TypeError) as e:
        raise ConversionError(str(e)) from e
    state_dict, meta = _unwrap(checkpoint, src)
    layout = detect_layout(state_dict, src)
    backbone = extract_backbone(state_dict, layout, momentum_encoder, src)
    stem_channels, base_channels, feature_dim = resnet_widths(backbone)
    summary = dict(
        source=osp.abspath(src),
        layout=layout.name,
        encoder='momentum' if momentum_encoder else 'online',
        depth=resnet_depth(backbone),
        stem_channels=stem_channels,
        base_channels=base_channels,
        feature_dim=feature_dim,
        tensors=len(backbone),
        parameters=sum(v.numel() for k, v in backbone.items()
                       if not k.endswith(_BUFFER_SUFFIXES)),
        source_epoch=_plain(meta.get('epoch')),
        source_iter=_plain(meta.get('iter')),
        format=fmt)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    if fmt == 'torchvision':
        torch.save(backbone, dst)
    else:
        prefix = PREFIXED_BACKBONE.online_prefix
        torch.save(
            dict(meta=dict(summary, converter='extract_backbone.py'),
                 state_dict=OrderedDict(
                     (prefix + k, v) for k, v in backbone.items())), dst)
    return summary


def _backbone_lines(summary: dict) -> List[str]:
    """Depth and widths; a non-standard width says how to build a ResNet that loads it."""
    depth = summary['depth']
    stem, base = summary['stem_channels'], summary['base_channels']
    widths = (f'stem {stem} / base {base} channels, '
              f'{summary["feature_dim"]}-d features')
    if not depth:
        return [f'Backbone   : ResNet with unusual block counts ({widths})']
    if stem == base == 64:
        return [f'Backbone   : ResNet-{depth} ({widths})']
    standard = 2048 if depth >= 50 else 512
    return [
        f'Backbone   : ResNet, depth {depth}, {widths} (not a standard ResNet-{depth}: '
        f'64 / 64, {standard}-d; torchvision\'s resnet{depth} cannot load it)',
        f'Build with : ResNet(depth={depth}, stem_channels={stem}, base_channels={base})'
        f' in mmpretrain / mmseg / mmdet',
    ]


def format_summary(summary: dict, dst: str) -> str:
    lines = [
        f'Source     : {summary["source"]}',
        f'Layout     : {summary["layout"]}',
        f'Encoder    : {summary["encoder"]}',
        *_backbone_lines(summary),
        f'Tensors    : {summary["tensors"]}',
        f'Parameters : {summary["parameters"]:,} '
        f'({summary["parameters"] / 1e6:.2f} M, BN running stats excluded)',
        f'Epoch      : {summary["source_epoch"]}',
        f'Iteration  : {summary["source_iter"]}',
        f'Written    : {dst} ({summary["format"]} format)',
    ]
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract the ResNet backbone of a kNN-MoCo / MoCo checkpoint for '
        "mmseg / mmdet (type='ResNet') or torchvision.")
    parser.add_argument('src', help='pretraining checkpoint (.pth)')
    parser.add_argument('dst', help='output path for the backbone weights')
    parser.add_argument(
        '--momentum-encoder',
        action='store_true',
        help='extract the momentum (key) encoder instead of the online one')
    parser.add_argument(
        '--format',
        choices=FORMATS,
        default='openmmlab',
        help="'openmmlab' (default): {'meta', 'state_dict'} with backbone.* keys, for "
        "init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.') and "
        "load_from; 'torchvision': a bare state dict that torchvision.models.resnet50() "
        'loads (all keys but fc)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        summary = convert(args.src, args.dst, args.momentum_encoder,
                          args.format)
    except ConversionError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    print(format_summary(summary, args.dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
