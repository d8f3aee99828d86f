"""Extract the ResNet backbone of a kNN-MoCo / MoCo checkpoint for fine-tuning.

The output loads into MMSegmentation's and MMDetection's ``type='ResNet'`` backbones (and into
the C4 shared head of MMDetection, whose ``layer4`` keys it also holds) with no missing and no
unexpected keys; ``--format torchvision`` writes a plain state dict for
``torchvision.models.resnet50()`` (everything but ``fc``).

Accepted inputs (the layout is detected from the keys):

* kNN-MoCo (this project, mmengine checkpoint): ``backbone.*`` online encoder,
  ``momentum_encoder.module.0.*`` momentum encoder, ``head.key_queue`` (+ ``head.backbone_queue``);
* mmpretrain ``MoCo``: ``backbone.*`` and ``encoder_k.module.0.*``, ``queue``;
* mmpretrain ``MoCoV3`` with a ResNet: ``backbone.*`` and ``momentum_encoder.module.0.*``;
* the official MoCo code base (also the checkpoints released with the paper,
  arXiv 2106.05967): ``module.encoder_q.*`` and ``module.encoder_k.*``.

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
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

# torch >= 2.6 loads with weights_only=True; importing revisit_ssl allow-lists the (data-only)
# types mmengine stores in a checkpoint's ``meta`` (message hub, numpy scalars).
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import revisit_ssl  # noqa: E402,F401

__all__ = [
    'ConversionError', 'SourceLayout', 'SOURCE_LAYOUTS', 'detect_layout',
    'extract_backbone', 'resnet_depth', 'resnet_widths', 'convert', 'format_summary',
    'main'
]


class ConversionError(ValueError):
    """The input is not a checkpoint this tool can convert; the message says why."""


@dataclass(frozen=True)
class SourceLayout:
    """Where a pretraining checkpoint keeps its two ResNet encoders.

    Args:
        name (str): Human-readable name of the layout.
        online_prefix (str): Key prefix of the online (query) encoder's ResNet.
        momentum_prefix (str): Key prefix of the momentum (key) encoder's ResNet.
        marker (str, optional): A key whose presence tells this layout apart from another
            one with the same prefixes.
    """
    name: str
    online_prefix: str
    momentum_prefix: str
    marker: Optional[str] = None


#: Known layouts, most specific first (kNN-MoCo and MoCoV3 share their prefixes; kNN-MoCo's
#: DualQueueHead holds the key queue, with or without the kNN backbone queue).
SOURCE_LAYOUTS: Tuple[SourceLayout, ...] = (
    SourceLayout('kNN-MoCo (revisit_ssl KNNMoCo)', 'backbone.',
                 'momentum_encoder.module.0.', 'head.key_queue'),
    SourceLayout('MoCo (mmpretrain MoCo)', 'backbone.', 'encoder_k.module.0.'),
    SourceLayout('MoCo v3 (mmpretrain MoCoV3)', 'backbone.',
                 'momentum_encoder.module.0.'),
    SourceLayout('MoCo (official facebookresearch/moco code)',
                 'module.encoder_q.', 'module.encoder_k.'),
)

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
                  path: str = 'the checkpoint') -> SourceLayout:
    """Find which pretraining method wrote ``state_dict``.

    Raises:
        ConversionError: If it is not a KNNMoCo / MoCo checkpoint, naming what was found.
    """
    keys = list(state_dict)
    for layout in SOURCE_LAYOUTS:
        has_online = any(k.startswith(layout.online_prefix) for k in keys)
        has_momentum = any(k.startswith(layout.momentum_prefix) for k in keys)
        has_marker = layout.marker is None or layout.marker in state_dict
        if has_online and has_momentum and has_marker:
            return layout
    expected = '; '.join(f'{lay.name}: {lay.online_prefix}* + '
                         f'{lay.momentum_prefix}*' for lay in SOURCE_LAYOUTS)
    raise ConversionError(
        f'{path} is not a kNN-MoCo / MoCo checkpoint: no online + momentum encoder pair '
        f'found. Expected one of [{expected}]; found top-level prefixes: '
        f'{_top_level_prefixes(keys)}. A supervised or already-converted checkpoint '
        'can be used as it is (init_cfg=dict(type="Pretrained", checkpoint=..., '
        'prefix="backbone.") for an mmpretrain classifier).')


def extract_backbone(state_dict: Dict[str, torch.Tensor],
                     layout: SourceLayout,
                     momentum_encoder: bool = False,
                     path: str = 'the checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """Pick one encoder's ResNet tensors out of a pretraining state dict.

    Args:
        state_dict (dict): Full state dict of the pretraining model.
        layout (SourceLayout): From :func:`detect_layout`.
        momentum_encoder (bool): Take the momentum (key) encoder instead of the online one.
        path (str): Name of the input, for error messages.

    Returns:
        OrderedDict: Keys like ``conv1.weight``, ``layer1.0.bn1.running_mean``.

    Raises:
        ConversionError: If the encoder is not a plain-stem ResNet.
    """
    prefix = layout.momentum_prefix if momentum_encoder else layout.online_prefix
    encoder = OrderedDict((k[len(prefix):], v.detach().clone())
                          for k, v in state_dict.items() if k.startswith(prefix))
    for hint, what in _FOREIGN_BACKBONE_HINTS.items():
        if any(k.startswith(hint) for k in encoder):
            raise ConversionError(
                f'The encoder under {prefix!r} in {path} is {what}, not the plain-stem '
                "ResNet the downstream configs build (type='ResNet'); convert it with "
                "the tools of its own model family instead.")
    # the official MoCo encoder carries its projection MLP as ``fc.*``: not backbone
    dropped = [k for k in encoder if not _RESNET_KEY.match(k)]
    non_fc = [k for k in dropped if not k.startswith('fc.')]
    if non_fc:
        raise ConversionError(
            f'The encoder under {prefix!r} in {path} has keys a ResNet does not have, '
            f'e.g. {non_fc[:5]}; it is not a ResNet backbone this tool can convert.')
    for k in dropped:
        del encoder[k]
    if 'conv1.weight' not in encoder or not any(
            k.startswith('layer1.') for k in encoder):
        raise ConversionError(
            f'The encoder under {prefix!r} in {path} lacks the ResNet stem / first '
            f'stage (conv1.weight, layer1.*); found {list(encoder)[:5]}.')
    return encoder


def resnet_depth(backbone: Dict[str, torch.Tensor]) -> Optional[int]:
    """The ResNet depth whose block counts match ``backbone`` (None if unusual)."""
    blocks = []
    for stage in range(1, 5):
        ids = {int(k.split('.')[1]) for k in backbone
               if k.startswith(f'layer{stage}.')}
        blocks.append(len(ids))
    bottleneck = any('.conv3.' in k for k in backbone)
    table = {
        (False, (2, 2, 2, 2)): 18,
        (False, (3, 4, 6, 3)): 34,
        (True, (3, 4, 6, 3)): 50,
        (True, (3, 4, 23, 3)): 101,
        (True, (3, 8, 36, 3)): 152,
    }
    return table.get((bottleneck, tuple(blocks)))


def resnet_widths(backbone: Dict[str, torch.Tensor]) -> Tuple[int, int, int]:
    """``(stem_channels, base_channels, feature_dim)`` of a ResNet state dict.

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
        fmt (str): ``'openmmlab'``: ``{'meta': ..., 'state_dict': ...}`` for
            ``init_cfg=dict(type='Pretrained', checkpoint=dst)``; ``'torchvision'``: the bare
            state dict for ``torchvision.models.resnetXX().load_state_dict``.

    Returns:
        dict: Summary (layout, encoder, tensors, parameters, depth, source epoch / iter).
    """
    if fmt not in ('openmmlab', 'torchvision'):
        raise ConversionError(
            f"unknown format {fmt!r}; use 'openmmlab' or 'torchvision'")
    if not osp.isfile(src):
        raise ConversionError(f'{src} does not exist')
    try:
        checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    except Exception as e:  # pickle.UnpicklingError and friends
        raise ConversionError(
            f'{src} cannot be loaded with torch.load(weights_only=True): {e}\n'
            'This tool never unpickles arbitrary objects. If the file comes from a source '
            'you trust, re-save its tensors alone: torch.save({"state_dict": '
            'ckpt["state_dict"]}, "clean.pth").') from e
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
        torch.save(
            dict(meta=dict(summary, converter='extract_backbone.py'),
                 state_dict=backbone), dst)
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
        choices=['openmmlab', 'torchvision'],
        default='openmmlab',
        help="'openmmlab': {'meta', 'state_dict'} for init_cfg=dict(type='Pretrained', "
        "checkpoint=DST) (default); 'torchvision': a bare state dict that "
        'torchvision.models.resnet50() loads (all keys but fc)')
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
