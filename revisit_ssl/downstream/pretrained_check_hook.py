"""Fail loudly when a fine-tuning run did not start from the pretrained backbone."""
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from revisit_ssl.utils.checkpoint_layouts import (PREFIXED_BACKBONE, detect_layout,
                                                  load_checkpoint_file,
                                                  pretrained_init_state_dict, resnet_depth,
                                                  resnet_widths, state_dict_of)

__all__ = ['PretrainedInitCheckHook', 'find_pretrained_inits']

_CONVERT_HINT = (
    "Pass the pretraining checkpoint with prefix='backbone.' (what the downstream configs "
    'set): work_dirs/<pretrain config>/epoch_<N>.pth, or a backbone file written by\n'
    '  python tools/model_converters/extract_backbone.py '
    'work_dirs/<pretrain config>/epoch_<N>.pth {path}')


def find_pretrained_inits(model_cfg: dict,
                          path: str = '') -> Iterator[Tuple[str, str, str]]:
    """Yield ``(module_path, checkpoint, prefix)`` for each ``Pretrained`` init in a model config.

    ``module_path`` is the dotted attribute path of the sub-module (``'backbone'``,
    ``'roi_head.shared_head'``); mmseg's ``model.pretrained`` counts as the backbone's.
    """
    if not isinstance(model_cfg, dict):
        return
    if not path and isinstance(model_cfg.get('pretrained'), str):
        yield 'backbone', model_cfg['pretrained'], ''
    init_cfgs = model_cfg.get('init_cfg')
    init_cfgs = init_cfgs if isinstance(init_cfgs, list) else [init_cfgs]
    for init in init_cfgs:
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            yield path, init['checkpoint'], init.get('prefix') or ''
    for key, value in model_cfg.items():
        if isinstance(value, dict) and key != 'init_cfg':
            yield from find_pretrained_inits(value,
                                             f'{path}.{key}' if path else key)


_C4_HINT = (
    "{name} is mmdet's ResLayer, the res5 RoI head of Faster R-CNN C4. It has no "
    'stem_channels / base_channels argument and always builds res5 at the standard width '
    '(64 base channels), but {checkpoint!r} holds a ResNet pretrained at {base} base '
    'channels (e.g. the half-width demo backbone of configs/knn_moco_demo.py), so its '
    'layer4 cannot initialise the head. Use the DC5 detector, which takes any width '
    '(configs/downstream/mmdet/faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py; on '
    'the demo data configs/downstream/mmdet/demo/'
    'faster-rcnn_r18-w32-dc5_knn-moco-demo_1xb4-100i_demo-voc0712.py), or pretrain a '
    'full-width ResNet (no stem_channels / base_channels in the pretraining config) for C4.')


def _resnet_arch(state: Dict[str, torch.Tensor]) -> Optional[Dict[str, int]]:
    """Depth (if standard), stem and base channels of a bare ResNet state dict."""
    if 'conv1.weight' not in state or 'layer1.0.conv1.weight' not in state:
        return None
    stem, base, _ = resnet_widths(state)
    return dict(depth=resnet_depth(state), stem=stem, base=base)


def _is_c4_res_layer(module: torch.nn.Module) -> bool:
    # mmdet.models.roi_heads.shared_heads.ResLayer, without importing mmdet here
    cls = type(module)
    return cls.__name__ == 'ResLayer' and cls.__module__.startswith('mmdet.')


def _build_hint(name: str, arch: Optional[Dict[str, int]]) -> str:
    """How to build ``name`` so that it matches the file's ResNet."""
    if not arch:
        return 'Check that the file holds a ResNet of the depth and width the config builds.'
    opts = ([f'model.{name}.depth={arch["depth"]}'] if arch['depth'] else []) + [
        f'model.{name}.stem_channels={arch["stem"]}',
        f'model.{name}.base_channels={arch["base"]}']
    return (f'The file holds a ResNet{"-" + str(arch["depth"]) if arch["depth"] else ""} '
            f'with stem {arch["stem"]} / base {arch["base"]} channels; build the model\'s '
            f'to match (--cfg-options {" ".join(opts)}, and the heads\' in_channels to '
            'its output).')


def _load_file(checkpoint: str) -> Dict[str, torch.Tensor]:
    """The file's whole state dict, loaded safely."""
    return state_dict_of(load_checkpoint_file(checkpoint))


def _prefix_hint(name: str, checkpoint: str, prefix: str,
                 file_state: Dict[str, torch.Tensor]) -> Optional[str]:
    """The fix when ``prefix`` does not fit the file's layout (None when it does)."""
    layout = detect_layout(file_state)
    want = layout.online_prefix
    if prefix and not prefix.endswith('.'):
        prefix += '.'  # as mmengine reads it
    if (prefix or '') == want:
        return None
    option = f'--cfg-options model.{name}.init_cfg.prefix='
    if not want:  # bare keys under a prefix
        return (f'{checkpoint!r} holds {layout.name}, e.g. {list(file_state)[:2]}, none '
                f'under prefix={prefix!r}. Fix: drop the prefix ({option}None).')
    fix = f"set prefix={want!r} ({option}{want})"
    if want == PREFIXED_BACKBONE.online_prefix:
        fix = f"set prefix='backbone.' ({option}backbone.), as the downstream configs do"
    converter = f'python tools/model_converters/extract_backbone.py {checkpoint} OUT.pth'
    if layout.is_pretraining and want == PREFIXED_BACKBONE.online_prefix:
        kind = f'a pretraining checkpoint ({layout.name})'
        fix += f'; or write bare keys for a config without a prefix: {converter} ' \
               '--format torchvision'
    elif layout.is_pretraining:
        kind = f'a pretraining checkpoint ({layout.name})'
        fix += (f"; or convert it to the layout the configs' prefix='backbone.' reads: "
                f'{converter}')
    else:
        kind = (f'a one-encoder file ({layout.name}; the default output of '
                'tools/model_converters/extract_backbone.py has this layout)')
    return (f'{checkpoint!r} is {kind}: its online backbone is under {want!r}, and '
            f'prefix={prefix or None!r} does not select it. Fix: {fix}.')


@HOOKS.register_module()
class PretrainedInitCheckHook(Hook):
    """Check that every ``init_cfg=dict(type='Pretrained')`` module really got its weights.

    mmengine loads ``Pretrained`` init checkpoints with ``strict=False`` and only logs missing
    keys, so a wrong file or prefix (e.g. a pretraining checkpoint, whose keys start with
    ``backbone.``, without ``prefix='backbone.'``) silently leaves the backbone randomly
    initialised. This hook reads each file as the init does (the layouts of
    :mod:`revisit_ssl.utils.checkpoint_layouts`: pretraining checkpoints and converted
    ``backbone.*`` files under ``prefix='backbone.'``, bare keys without a prefix, the official
    release's ``module.encoder_q.*`` under that prefix), and

    * before the weights are initialised (``before_run`` of a training run), checks that
      each checkpoint file exists and holds every key of its target module with the
      module's shapes (the C4 RoI head, mmdet's ``ResLayer``, cannot take a backbone
      pretrained at another width, e.g. the half-width demo one: named as such), and
    * once they are (``before_train``), that the module's tensors equal the file's,

    and raises with the fix otherwise. Runs that ``resume`` or set ``load_from`` skip the
    equality check, since those weights replace the initialisation on purpose.

    Args:
        allow_missing (list[str]): Key prefixes of the target modules that may stay
            uninitialised. Defaults to none.
    """
    priority = 'VERY_HIGH'

    def __init__(self, allow_missing: Optional[List[str]] = None) -> None:
        self.allow_missing = tuple(allow_missing or ())

    def _targets(self, runner) -> List[Tuple[str, torch.nn.Module, str, str]]:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        targets = []
        for module_path, checkpoint, prefix in find_pretrained_inits(
                runner.cfg.model):
            module = model
            for name in filter(None, module_path.split('.')):
                module = getattr(module, name, None)
            if module is None:
                continue
            targets.append((module_path or 'model', module, checkpoint, prefix))
        return targets

    def _expected_keys(self, module: torch.nn.Module) -> List[str]:
        return [k for k in module.state_dict()
                if not k.startswith(self.allow_missing)]

    def before_run(self, runner) -> None:
        # ``Runner.train`` builds its loop before ``before_run``; ``val`` / ``test`` runs load
        # a fine-tuned checkpoint and never need the pretrained file
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return
        loaded = []
        for name, module, checkpoint, prefix in self._targets(runner):
            if '://' in checkpoint:
                continue  # remote / open-mmlab:// files: nothing to check offline
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'{name}: pretrained checkpoint {checkpoint!r} does not exist.\n'
                    + _CONVERT_HINT.format(path=checkpoint) +
                    f'\nor point the config at your file with --cfg-options '
                    f'model.{name}.init_cfg.checkpoint=PATH')
            file_state = _load_file(checkpoint)
            state = pretrained_init_state_dict(file_state, prefix)
            missing = [k for k in self._expected_keys(module) if k not in state]
            hint = _prefix_hint(name, checkpoint, prefix, file_state) if missing else None
            if hint:
                raise RuntimeError(
                    f'{name}: {len(missing)} of its tensors are not in {checkpoint!r} '
                    f'under prefix={prefix or None!r} (e.g. {missing[:3]}), so they would '
                    f'keep their random initialisation.\n{hint}')
            loaded.append((name, module, checkpoint, state, _resnet_arch(state)))
        # first, as no override can fix it: a C4 head fed a narrower pretrained ResNet
        for name, module, checkpoint, _, arch in loaded:
            if _is_c4_res_layer(module) and arch and (arch['stem'], arch['base']) != (64, 64):
                raise RuntimeError(
                    _C4_HINT.format(name=name, checkpoint=checkpoint, base=arch['base']))
        for name, module, checkpoint, state, arch in loaded:
            missing = [k for k in self._expected_keys(module) if k not in state]
            if missing:
                raise RuntimeError(
                    f'{name}: {len(missing)} of its tensors are not in {checkpoint!r} '
                    f'(e.g. {missing[:3]}), so they would keep their random '
                    f'initialisation.\n{_build_hint(name, arch)}')
            mismatched = [
                f'{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}'
                for k, v in module.state_dict().items()
                if k in state and state[k].shape != v.shape
            ]
            if mismatched:
                hint = (_C4_HINT.format(name=name, checkpoint=checkpoint,
                                        base=arch['base'] if arch else 'another number of')
                        if _is_c4_res_layer(module) else _build_hint(name, arch))
                raise RuntimeError(
                    f'{name}: {len(mismatched)} tensors of {checkpoint!r} have other '
                    f'shapes than the model the config builds (e.g. {mismatched[:2]}), so '
                    f'they would keep their random initialisation.\n{hint}')

    def before_train(self, runner) -> None:
        if runner.cfg.get('resume') or runner.cfg.get('load_from'):
            return
        for name, module, checkpoint, prefix in self._targets(runner):
            if '://' in checkpoint:
                continue
            state = pretrained_init_state_dict(_load_file(checkpoint), prefix)
            differ = [
                k for k, v in module.state_dict().items()
                if k in state and not torch.equal(v.detach().cpu(), state[k])
            ]
            if differ:
                raise RuntimeError(
                    f'{name}: {len(differ)} tensors differ from {checkpoint!r} after '
                    f'initialisation (e.g. {differ[:3]}); shapes or dtypes in the file do '
                    'not fit the model the config builds.')
            runner.logger.info(
                f'{name}: all {len(module.state_dict())} tensors initialised from '
                f'{checkpoint}')
