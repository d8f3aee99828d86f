"""tools/model_converters/extract_backbone.py: layouts, refusals, and loading into mmseg /
mmdet / torchvision ResNets without missing or unexpected keys."""
import importlib.util
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONVERTER = osp.join(ROOT, 'tools', 'model_converters', 'extract_backbone.py')

_spec = importlib.util.spec_from_file_location('extract_backbone', CONVERTER)
extract_backbone = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(extract_backbone)

_BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


def random_resnet_state(depth: int, seed: int) -> 'OrderedDict[str, torch.Tensor]':
    """State dict of a randomly initialised mmpretrain ResNet with non-trivial BN stats."""
    from mmpretrain.models import ResNet
    torch.manual_seed(seed)
    state = ResNet(depth=depth).state_dict()
    for k, v in state.items():
        if v.is_floating_point():
            # distinct values everywhere, so that a mixed-up tensor cannot match by chance
            v.copy_(torch.randn_like(v).abs() + 0.1 if k.endswith(
                'running_var') else torch.randn_like(v))
        else:
            v.fill_(seed + 7)  # num_batches_tracked
    return state


def knn_moco_state_dict(depth: int = 18,
                        queue_len: int = 16) -> 'OrderedDict[str, torch.Tensor]':
    """A KNNMoCo state dict: online + momentum ResNet / MoCoV2Neck and the two queues."""
    from mmpretrain.models.necks import MoCoV2Neck
    dim = 512 if depth < 50 else 2048
    online = random_resnet_state(depth, seed=1)
    momentum = random_resnet_state(depth, seed=2)
    torch.manual_seed(3)
    neck = MoCoV2Neck(dim, dim, 128).state_dict()
    state = OrderedDict()
    state.update((f'backbone.{k}', v) for k, v in online.items())
    state.update((f'neck.{k}', v) for k, v in neck.items())
    state.update((f'momentum_encoder.module.0.{k}', v)
                 for k, v in momentum.items())
    state.update((f'momentum_encoder.module.1.{k}', v.clone())
                 for k, v in neck.items())
    state['momentum_encoder.steps'] = torch.tensor([30])
    state['head.key_queue'] = torch.nn.functional.normalize(
        torch.randn(128, queue_len), dim=0)
    state['head.backbone_queue'] = torch.nn.functional.normalize(
        torch.randn(dim, queue_len), dim=0)
    state['head.queue_ptr'] = torch.zeros(1, dtype=torch.long)
    return state


def save_mmengine_checkpoint(path: str, state_dict: dict, epoch: int = 3,
                             iteration: int = 30) -> str:
    torch.save(
        dict(
            meta=dict(
                epoch=epoch,
                iter=iteration,
                cfg="model = dict(type='KNNMoCo')",
                mmengine_version='0.10.7'),
            state_dict=state_dict), path)
    return path


def make_knn_moco_checkpoint(path: str, depth: int = 18) -> str:
    """The demo KNNMoCo checkpoint of the downstream tests (mmengine form, epoch 3)."""
    return save_mmengine_checkpoint(path, knn_moco_state_dict(depth))


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def prefixed(state: dict, prefix: str) -> 'OrderedDict[str, torch.Tensor]':
    """``state``'s tensors under ``prefix``, re-keyed as the converter writes them
    (``backbone.<key>``, the layout that init_cfg=Pretrained with prefix='backbone.' reads)."""
    return OrderedDict((f'backbone.{k[len(prefix):]}', v) for k, v in state.items()
                       if k.startswith(prefix))


def assert_same_tensors(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------ layouts


def test_knn_moco_online_encoder_exact(tmp_path):
    state = knn_moco_state_dict(18)
    src = save_mmengine_checkpoint(str(tmp_path / 'in.pth'), state)
    dst = str(tmp_path / 'sub' / 'out.pth')
    summary = extract_backbone.convert(src, dst)
    out = load(dst)
    expected = prefixed(state, 'backbone.')
    assert_same_tensors(out['state_dict'], expected)
    assert summary['layout'].startswith('kNN-MoCo')
    assert summary['encoder'] == 'online'
    assert summary['depth'] == 18
    assert summary['tensors'] == len(expected) == 120
    assert summary['parameters'] == sum(
        v.numel() for k, v in expected.items() if not k.endswith(_BUFFERS))
    assert summary['source_epoch'] == 3 and summary['source_iter'] == 30
    assert out['meta']['source_epoch'] == 3


@pytest.mark.parametrize('drop, layout', [
    (('head.backbone_queue', ), 'kNN-MoCo'),  # KNNMoCo with use_knn=False
    (('head.key_queue', 'head.backbone_queue', 'head.queue_ptr'), 'MoCo v3'),
])
def test_layouts_sharing_prefixes(tmp_path, drop, layout):
    state = knn_moco_state_dict(18)
    for key in drop:
        del state[key]
    src = save_mmengine_checkpoint(str(tmp_path / 'in.pth'), state)
    summary = extract_backbone.convert(src, str(tmp_path / 'out.pth'))
    assert summary['layout'].startswith(layout)
    assert summary['tensors'] == 120


def test_momentum_encoder_option(tmp_path):
    state = knn_moco_state_dict(18)
    src = save_mmengine_checkpoint(str(tmp_path / 'in.pth'), state)
    dst = str(tmp_path / 'out.pth')
    summary = extract_backbone.convert(src, dst, momentum_encoder=True)
    expected = prefixed(state, 'momentum_encoder.module.0.')
    assert_same_tensors(load(dst)['state_dict'], expected)
    assert summary['encoder'] == 'momentum'
    # and it really is a different encoder than the online one
    assert not torch.equal(expected['backbone.conv1.weight'],
                           state['backbone.conv1.weight'])


def test_mmpretrain_moco_checkpoint(tmp_path):
    """mmpretrain's own MoCo (encoder_k.module.0.*, queue) converts too."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='MoCo',
            queue_len=16,
            feat_dim=16,
            momentum=0.01,
            backbone=dict(type='ResNet', depth=18),
            neck=dict(
                type='MoCoV2Neck',
                in_channels=512,
                hid_channels=32,
                out_channels=16),
            head=dict(
                type='ContrastiveHead',
                loss=dict(type='CrossEntropyLoss'),
                temperature=0.2)))
    with torch.no_grad():  # make the key encoder differ from the query encoder
        for p in model.encoder_k.parameters():
            p.add_(1.0)
    state = model.state_dict()
    src = save_mmengine_checkpoint(str(tmp_path / 'moco.pth'), state)
    for momentum, prefix in ((False, 'backbone.'),
                             (True, 'encoder_k.module.0.')):
        dst = str(tmp_path / f'out_{momentum}.pth')
        summary = extract_backbone.convert(src, dst, momentum_encoder=momentum)
        assert_same_tensors(load(dst)['state_dict'], prefixed(state, prefix))
        assert summary['layout'].startswith('MoCo (mmpretrain')


def test_official_moco_checkpoint_drops_fc(tmp_path):
    """The official MoCo / paper release layout (module.encoder_q.*, fc MLP head)."""
    import torchvision
    torch.manual_seed(0)
    q = torchvision.models.resnet18()
    q.fc = torch.nn.Sequential(
        torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128))
    state = OrderedDict()
    state.update((f'module.encoder_q.{k}', v) for k, v in q.state_dict().items())
    state.update((f'module.encoder_k.{k}', v + 1)
                 for k, v in q.state_dict().items())
    state['module.queue'] = torch.randn(128, 16)
    state['module.queue_ptr'] = torch.zeros(1, dtype=torch.long)
    src = str(tmp_path / 'moco_v2_800ep.pth.tar')
    torch.save(dict(epoch=800, arch='resnet18', state_dict=state), src)
    dst = str(tmp_path / 'out.pth')
    summary = extract_backbone.convert(src, dst, fmt='torchvision')
    out = load(dst)
    assert not any(k.startswith('fc.') for k in out)
    tv = torchvision.models.resnet18()
    result = tv.load_state_dict(out, strict=False)
    assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight']
    assert result.unexpected_keys == []
    assert torch.equal(tv.layer3[1].bn2.running_var,
                       state['module.encoder_q.layer3.1.bn2.running_var'])
    assert summary['source_epoch'] == 800


def test_real_knn_moco_model_if_available(tmp_path):
    """The lead's KNNMoCo, once registered, must produce the layout this tool reads."""
    from mmpretrain.registry import MODELS
    if MODELS.get('KNNMoCo') is None:
        pytest.skip('KNNMoCo is not registered yet')
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='KNNMoCo',
            momentum=0.01,
            backbone=dict(type='ResNet', depth=18),
            neck=dict(
                type='MoCoV2Neck',
                in_channels=512,
                hid_channels=32,
                out_channels=16,
                with_avg_pool=True),
            head=dict(
                type='DualQueueHead',
                queue_len=8,
                knn_k=3,
                feat_dim=16,
                backbone_dim=512)))
    state = model.state_dict()
    src = save_mmengine_checkpoint(str(tmp_path / 'knn.pth'), state)
    summary = extract_backbone.convert(src, str(tmp_path / 'out.pth'))
    assert summary['layout'].startswith('kNN-MoCo')
    assert summary['tensors'] == sum(1 for k in state
                                     if k.startswith('backbone.'))


# --------------------------------------------------------------------- target models


@pytest.mark.parametrize('depth', [18, 50])
def test_loads_into_mmseg_and_mmdet_resnet(tmp_path, depth):
    """The default output through init_cfg=Pretrained(prefix='backbone.'), as the downstream
    configs read it: every tensor of the model comes from the file, none is left over."""
    from mmdet.models.backbones import ResNet as DetResNet
    from mmdet.models.roi_heads.shared_heads import ResLayer
    from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
    from mmseg.models.backbones import ResNet as SegResNet

    state = knn_moco_state_dict(depth)
    src = save_mmengine_checkpoint(str(tmp_path / 'in.pth'), state)
    dst = str(tmp_path / 'out.pth')
    extract_backbone.convert(src, dst)
    init = dict(type='Pretrained', checkpoint=dst, prefix='backbone.')
    # what mmengine's Pretrained init hands the module
    converted = _load_checkpoint_with_prefix('backbone.', dst)
    for i, build in enumerate((
            lambda **kw: SegResNet(
                depth=depth,
                strides=(1, 2, 2, 1),
                dilations=(1, 1, 1, 2),
                contract_dilation=False, **kw),
            lambda **kw: DetResNet(
                depth=depth,
                strides=(1, 2, 2, 1),
                dilations=(1, 1, 1, 2),
                frozen_stages=-1, **kw),
    )):
        # strict: a missing or unexpected key raises
        model = build()
        model.load_state_dict(converted, strict=True)
        assert set(model.state_dict()) == set(converted)
        if i == 0:
            continue  # (one init_weights run is enough: both are mmengine's BaseModule)
        # the init_cfg the downstream configs use
        model = build(init_cfg=init)
        model.init_weights()
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[f'backbone.{k}']), k
    # the C4 shared head (res5 of Faster R-CNN C4) takes layer4 from the same file
    head = ResLayer(depth=depth, stage=3, stride=2, init_cfg=init)
    head.init_weights()
    for k, v in head.state_dict().items():
        assert torch.equal(v, state[f'backbone.{k}']), k


def test_default_output_loads_into_knn_moco_both_backbones(tmp_path):
    """load_from a converted file fills the online and the momentum backbone of KNNMoCo."""
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    if MODELS.get('KNNMoCo') is None:
        pytest.skip('KNNMoCo is not registered yet')
    state = knn_moco_state_dict(18)
    src = save_mmengine_checkpoint(str(tmp_path / 'in.pth'), state)
    dst = str(tmp_path / 'out.pth')
    extract_backbone.convert(src, dst, momentum_encoder=True)
    model = MODELS.build(
        dict(type='KNNMoCo', momentum=0.01, backbone=dict(type='ResNet', depth=18),
             neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=32,
                       out_channels=16, with_avg_pool=True),
             head=dict(type='DualQueueHead', queue_len=8, knn_k=3, feat_dim=16,
                       backbone_dim=512)))
    load_checkpoint(model, dst, strict=False)
    for part in (model.backbone, model.momentum_encoder.module[0]):
        for k, v in part.state_dict().items():
            assert torch.equal(v, state[f'momentum_encoder.module.0.{k}']), k


@pytest.mark.parametrize('depth', [18, 50])
def test_torchvision_format_loads_strictly_except_fc(tmp_path, depth):
    import torchvision
    state = knn_moco_state_dict(depth)
    src = save_mmengine_checkpoint(str(tmp_path / 'in.pth'), state)
    dst = str(tmp_path / 'tv.pth')
    extract_backbone.convert(src, dst, fmt='torchvision')
    out = load(dst)
    assert 'state_dict' not in out and 'meta' not in out  # bare state dict
    model = getattr(torchvision.models, f'resnet{depth}')()
    result = model.load_state_dict(out, strict=False)
    assert sorted(result.missing_keys) == ['fc.bias', 'fc.weight']
    assert result.unexpected_keys == []
    for k, v in model.state_dict().items():
        if not k.startswith('fc.'):
            assert torch.equal(v, state[f'backbone.{k}']), k


# ------------------------------------------------------------------------- refusals


def test_refuses_supervised_classifier(tmp_path):
    from mmpretrain.models import ResNet
    state = OrderedDict(
        (f'backbone.{k}', v) for k, v in ResNet(depth=18).state_dict().items())
    state['head.fc.weight'] = torch.randn(10, 512)
    state['head.fc.bias'] = torch.randn(10)
    src = save_mmengine_checkpoint(str(tmp_path / 'cls.pth'), state)
    with pytest.raises(extract_backbone.ConversionError) as err:
        extract_backbone.convert(src, str(tmp_path / 'out.pth'))
    msg = str(err.value)
    assert 'not a kNN-MoCo / MoCo checkpoint' in msg
    assert 'backbone (' in msg and 'head (2 keys)' in msg
    assert not osp.exists(tmp_path / 'out.pth')


def test_refuses_deep_stem(tmp_path):
    from mmpretrain.models import ResNetV1c
    deep = ResNetV1c(depth=18).state_dict()
    state = OrderedDict()
    state.update((f'backbone.{k}', v) for k, v in deep.items())
    state.update((f'encoder_k.module.0.{k}', v) for k, v in deep.items())
    src = save_mmengine_checkpoint(str(tmp_path / 'v1c.pth'), state)
    with pytest.raises(extract_backbone.ConversionError, match='deep stem'):
        extract_backbone.convert(src, str(tmp_path / 'out.pth'))


@pytest.mark.parametrize('payload, match', [
    ([1, 2, 3], 'not a checkpoint dict'),
    ({'optimizer': {'lr': 0.1}}, 'no state dict of tensors'),
])
def test_refuses_non_checkpoints(tmp_path, payload, match):
    src = str(tmp_path / 'x.pth')
    torch.save(payload, src)
    with pytest.raises(extract_backbone.ConversionError, match=match):
        extract_backbone.convert(src, str(tmp_path / 'out.pth'))


def test_cli_summary(tmp_path):
    """The script runs standalone and prints the summary."""
    src = make_knn_moco_checkpoint(str(tmp_path / 'in.pth'))
    dst = str(tmp_path / 'out.pth')
    ok = subprocess.run([sys.executable, CONVERTER, src, dst],
                        capture_output=True,
                        text=True,
                        cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert 'ResNet-18' in ok.stdout
    assert 'Tensors    : 120' in ok.stdout
    assert 'Epoch      : 3' in ok.stdout
    params = sum(v.numel() for k, v in load(dst)['state_dict'].items()
                 if not k.endswith(_BUFFERS))
    assert f'{params:,}' in ok.stdout


def test_summary_gives_the_widths_of_a_narrow_backbone(tmp_path):
    """The half-width demo net is no torchvision resnet18: the summary says how to build it."""
    from mmpretrain.models import ResNet
    narrow = ResNet(depth=18, stem_channels=32, base_channels=32).state_dict()
    state = OrderedDict((f'backbone.{k}', v) for k, v in narrow.items())
    state.update((f'momentum_encoder.module.0.{k}', v.clone()) for k, v in narrow.items())
    state['head.key_queue'] = torch.zeros(128, 16)
    src = save_mmengine_checkpoint(str(tmp_path / 'demo.pth'), state)
    summary = extract_backbone.convert(src, str(tmp_path / 'out.pth'))
    assert (summary['depth'], summary['stem_channels'], summary['base_channels'],
            summary['feature_dim']) == (18, 32, 32, 256)
    text = extract_backbone.format_summary(summary, 'out.pth')
    assert 'Backbone   : ResNet-18' not in text
    assert 'stem 32 / base 32 channels, 256-d features' in text
    assert 'ResNet(depth=18, stem_channels=32, base_channels=32)' in text
    # standard widths: the usual name, with the widths
    full = extract_backbone.convert(make_knn_moco_checkpoint(str(tmp_path / 'r50.pth'), 50),
                                    str(tmp_path / 'r50_out.pth'))
    assert extract_backbone.format_summary(full, 'x').splitlines()[3] == (
        'Backbone   : ResNet-50 (stem 64 / base 64 channels, 2048-d features)')


def test_cli_refusal_is_one_clear_line(tmp_path, capsys):
    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, bad)
    dst = str(tmp_path / 'out.pth')
    assert extract_backbone.main([bad, dst]) == 1
    err = capsys.readouterr().err
    assert err.startswith('ERROR:') and 'not a kNN-MoCo / MoCo' in err
    assert 'Traceback' not in err
    assert not osp.exists(dst)
