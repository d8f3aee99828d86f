"""Issue 16, item 2: the downstream configs take the pretraining checkpoint exactly as
tools/train.py writes it (no conversion step), through mmengine's ``Pretrained`` init with
``prefix='backbone.'``; the converter's output (momentum encoder here) reads the same way.

The demo leaf configs (half-width ResNet-18) and the C4 recipe (full-width ResNet-18 through
``--cfg-options``-style overrides) are built on CPU and initialised from a tiny KNNMoCo-style
checkpoint; every tensor of the backbone (and of the C4 res5 head) must equal the file's, and
``PretrainedInitCheckHook`` must pass.
"""
import os.path as osp
from collections import OrderedDict
from types import SimpleNamespace
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import BaseLoop
from mmengine.utils import import_modules_from_strings

from revisit_ssl.downstream import PretrainedInitCheckHook
from test_converter import extract_backbone, save_mmengine_checkpoint

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG_DEMO = osp.join(ROOT, 'configs', 'downstream', 'mmseg', 'demo',
                    'fcn_r18-w32-d16_knn-moco-demo_1xb8-2e_demo-voc12aug-96x96.py')
DET_DEMO = osp.join(ROOT, 'configs', 'downstream', 'mmdet', 'demo',
                    'faster-rcnn_r18-w32-dc5_knn-moco-demo_1xb4-100i_demo-voc0712.py')
C4 = osp.join(ROOT, 'configs', 'downstream', 'mmdet',
              'faster-rcnn_r50-c4_knn-moco-pre_8xb2-24k_voc0712.py')


def _resnet_state(seed: int, width: int) -> 'OrderedDict[str, torch.Tensor]':
    """A ResNet-18 (stem / base ``width``) with distinct values in every tensor."""
    from mmpretrain.models import ResNet
    torch.manual_seed(seed)
    state = ResNet(depth=18, stem_channels=width, base_channels=width).state_dict()
    for k, v in state.items():
        if v.is_floating_point():
            v.copy_(torch.rand_like(v) + 0.1 if k.endswith('running_var') else
                    torch.randn_like(v))
        else:
            v.fill_(seed + 7)
    return state


def knn_moco_checkpoint(path: str, width: int) -> Dict[str, 'OrderedDict']:
    """What tools/train.py writes for KNNMoCo: online backbone.*, neck, momentum encoder,
    queues; returns the two encoders' tensors under the ResNet's own keys."""
    online, momentum = _resnet_state(1, width), _resnet_state(2, width)
    dim = width * 8
    state = OrderedDict((f'backbone.{k}', v) for k, v in online.items())
    state['neck.mlp.0.weight'] = torch.randn(dim, dim)
    state.update((f'momentum_encoder.module.0.{k}', v) for k, v in momentum.items())
    state['momentum_encoder.module.1.mlp.0.weight'] = torch.randn(dim, dim)
    state['momentum_encoder.steps'] = torch.tensor([30])
    state['head.key_queue'] = torch.randn(128, 16)
    state['head.backbone_queue'] = torch.randn(dim, 16)
    state['head.queue_ptr'] = torch.zeros(1, dtype=torch.long)
    save_mmengine_checkpoint(path, state)
    return dict(online=online, momentum=momentum)


class _TrainLoop(BaseLoop):
    """Only its type matters: the hook checks training runs."""

    def run(self):
        pass


def build_and_init(cfg: Config, checkpoint: str):
    """Build ``cfg.model`` as a training run would and initialise it; run the hook around it."""
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    for init in _pretrained_inits(cfg.model):
        init['checkpoint'] = checkpoint
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
        runner = SimpleNamespace(
            model=model, cfg=cfg, _train_loop=_TrainLoop.__new__(_TrainLoop),
            logger=MMLogger.get_instance('test_pretrained_init'))
        hook = PretrainedInitCheckHook()
        hook.before_run(runner)  # files exist, keys and shapes cover every module
        model.init_weights()
        hook.before_train(runner)  # the tensors equal the file's
    return model


def _pretrained_inits(node):
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            yield init
        for value in node.values():
            yield from _pretrained_inits(value)


def assert_equal_state(module: torch.nn.Module, expected: dict, keys=None):
    state = module.state_dict()
    keys = list(state) if keys is None else keys
    assert keys and set(keys) <= set(expected)
    for k in keys:
        assert torch.equal(state[k], expected[k]), k


@pytest.fixture(scope='module')
def half_width(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_40.pth')
    return dict(path=path, **knn_moco_checkpoint(path, width=32))


@pytest.mark.parametrize('config', [SEG_DEMO, DET_DEMO], ids=osp.basename)
def test_demo_backbone_from_the_raw_checkpoint(config, half_width):
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    model = build_and_init(cfg, half_width['path'])
    # the online encoder, every tensor (BN statistics included), not the momentum one
    assert_equal_state(model.backbone, half_width['online'])
    assert not torch.equal(model.backbone.conv1.weight,
                           half_width['momentum']['conv1.weight'])


@pytest.mark.parametrize('config', [SEG_DEMO, DET_DEMO], ids=osp.basename)
def test_demo_backbone_from_the_converted_momentum_encoder(config, half_width, tmp_path):
    dst = str(tmp_path / 'momentum_backbone.pth')
    extract_backbone.convert(half_width['path'], dst, momentum_encoder=True)
    model = build_and_init(Config.fromfile(config), dst)
    assert_equal_state(model.backbone, half_width['momentum'])


def test_c4_backbone_and_res5_head_from_the_raw_checkpoint(tmp_path):
    path = str(tmp_path / 'epoch_200.pth')
    full = knn_moco_checkpoint(path, width=64)
    cfg = Config.fromfile(C4)
    cfg.merge_from_dict({
        'model.backbone.depth': 18,
        'model.roi_head.shared_head.depth': 18,
        'model.rpn_head.in_channels': 256,
        'model.roi_head.bbox_roi_extractor.out_channels': 256,
        'model.roi_head.bbox_head.in_channels': 512,
    })
    assert cfg.model.roi_head.shared_head.init_cfg.prefix == 'backbone.'
    model = build_and_init(cfg, path)
    # backbone: stem + layer1..3; res5 head: layer4 of the same online encoder
    backbone_keys = list(model.backbone.state_dict())
    assert not any(k.startswith('layer4.') for k in backbone_keys)
    assert_equal_state(model.backbone, full['online'])
    head_keys = list(model.roi_head.shared_head.state_dict())
    assert head_keys and all(k.startswith('layer4.') for k in head_keys)
    assert_equal_state(model.roi_head.shared_head, full['online'])
    assert set(backbone_keys) | set(head_keys) == set(full['online'])


def test_hook_stops_a_file_without_backbone_keys(tmp_path, half_width):
    """A bare state dict (torchvision-style keys, no 'backbone.') cannot pass unnoticed."""
    bare = str(tmp_path / 'bare.pth')
    torch.save(half_width['online'], bare)
    with pytest.raises(RuntimeError, match='not in'):
        build_and_init(Config.fromfile(SEG_DEMO), bare)
