"""revisit_ssl.downstream: depth head / loss, NYUD datasets, PretrainedInitCheckHook."""
import logging
import os.path as osp
import re
import sys
from types import SimpleNamespace

import pytest
import torch

import revisit_ssl.downstream as downstream
from revisit_ssl.downstream import (ASPPDepthHead, DepthMSELoss,
                                    PretrainedInitCheckHook,
                                    find_pretrained_inits)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _mmseg_scope():
    # other test modules may leave another default scope behind; these components are mmseg's
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_not_imported_by_pretraining():
    """``import revisit_ssl`` must not import the downstream package nor mmseg (mmdet is
    imported by mmpretrain itself)."""
    import subprocess
    code = ('import sys, revisit_ssl; '
            'print("revisit_ssl.downstream" in sys.modules, "mmseg" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd=osp.dirname(osp.dirname(osp.abspath(__file__))))
    assert out.stdout.split() == ['False', 'False'], out.stderr


def test_registered_in_mmseg_and_mmengine():
    from mmengine.registry import HOOKS
    from mmseg.registry import DATASETS, MODELS
    assert DATASETS.get('NYUDv2Dataset') is downstream.NYUDv2Dataset
    assert DATASETS.get('NYUDv2DepthDataset') is downstream.NYUDv2DepthDataset
    assert MODELS.get('ASPPDepthHead') is ASPPDepthHead
    assert MODELS.get('DepthMSELoss') is DepthMSELoss
    assert HOOKS.get('PretrainedInitCheckHook') is PretrainedInitCheckHook


def test_nyud40_metainfo():
    meta = downstream.NYUDv2Dataset.METAINFO
    assert len(meta['classes']) == 40 == len(set(meta['classes']))
    assert meta['classes'][0] == 'wall' and meta['classes'][-1] == 'otherprop'
    assert len({tuple(c) for c in meta['palette']}) == 40


# ---------------------------------------------------------------------------- depth


def test_depth_mse_masks_invalid_pixels():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 5, 7, generator=g) * 8
    target = torch.rand(2, 1, 5, 7, generator=g) * 8 + 0.5
    target[0, 0, :2] = 0.  # Kinect holes
    target[1, 0, :, -1] = 255.  # preprocessor padding
    loss = DepthMSELoss(max_depth=10.0, loss_weight=2.0)(pred, target)
    valid = (target > 1e-3) & (target < 10)
    expected = 2.0 * ((pred - target)[valid]**2).sum() / valid.sum()
    assert torch.allclose(loss, expected)

    pred.requires_grad_(True)
    empty = DepthMSELoss()(pred, torch.zeros_like(target))
    assert empty.item() == 0
    empty.backward()  # still connected to the graph: DDP does not hang
    assert torch.count_nonzero(pred.grad) == 0


def _depth_head():
    torch.manual_seed(0)
    return ASPPDepthHead(
        in_channels=8,
        in_index=0,
        channels=4,
        dilations=(1, 2),
        dropout_ratio=0.0,  # deterministic forward for the comparison below
        max_depth=10.0,
        norm_cfg=dict(type='BN'))


def test_depth_head_loss_and_prediction():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    head = _depth_head()
    assert head.out_channels == 1 and head.num_classes == 1
    feats = [torch.randn(2, 8, 4, 4)]
    samples = []
    for i in range(2):
        s = SegDataSample()
        s.gt_depth_map = PixelData(data=torch.full((1, 16, 16), 2.0 + i))
        samples.append(s)
    losses = head.loss(feats, samples, train_cfg={})
    assert set(losses) == {'loss_mse'}
    # independent computation: bilinear upsampling of the raw output, MSE to the targets
    out = torch.nn.functional.interpolate(
        head(feats), size=(16, 16), mode='bilinear', align_corners=False)
    target = torch.stack([s.gt_depth_map.data for s in samples])
    assert torch.allclose(losses['loss_mse'], ((out - target)**2).mean())

    head.eval()
    with torch.no_grad():
        big = head.conv_seg.bias.fill_(50.)  # pushes predictions above max_depth
        pred = head.predict(feats, [dict(img_shape=(16, 16), pad_shape=(16, 16))],
                            test_cfg={})
    assert pred.shape == (2, 1, 16, 16)
    assert big.item() == 50. and torch.all(pred == 10.0)


def test_depth_head_rejects_num_classes():
    with pytest.raises(ValueError, match='one depth channel'):
        ASPPDepthHead(
            in_channels=8, channels=4, dilations=(1, ), num_classes=40)


# ----------------------------------------------------------------------------- hook


def _runner(tmp_path, model, model_cfg, training=True, **cfg):
    from mmengine.config import ConfigDict
    from mmengine.runner import BaseLoop

    class _Loop(BaseLoop):

        def run(self):
            pass

    return SimpleNamespace(
        model=model,
        cfg=ConfigDict(model=model_cfg, **cfg),
        _train_loop=_Loop(None, []) if training else dict(type='EpochBasedTrainLoop'),
        logger=logging.getLogger('hook-test'))


class _Detector(torch.nn.Module):
    """Like a C4 Faster R-CNN: the backbone and the RoI head load one converted file."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Module()
        self.backbone.conv1 = torch.nn.Conv2d(3, 4, 3)
        self.roi_head = torch.nn.Module()
        self.roi_head.shared_head = torch.nn.Module()
        self.roi_head.shared_head.layer4 = torch.nn.Conv2d(4, 4, 1)

    def converted(self):
        return {**self.backbone.state_dict(), **self.roi_head.shared_head.state_dict()}


def _model_cfg(ckpt):
    return dict(
        type='Det',
        backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=ckpt)),
        roi_head=dict(
            shared_head=dict(
                init_cfg=[dict(type='Kaiming'),
                          dict(type='Pretrained', checkpoint=ckpt)])))


def test_find_pretrained_inits():
    found = list(find_pretrained_inits(_model_cfg('a.pth')))
    assert found == [('backbone', 'a.pth', ''),
                     ('roi_head.shared_head', 'a.pth', '')]
    seg = dict(pretrained='b.pth', backbone=dict(type='ResNet'))
    assert list(find_pretrained_inits(seg)) == [('backbone', 'b.pth', '')]


def test_hook_passes_on_converted_weights(tmp_path):
    model = _Detector()
    path = str(tmp_path / 'converted.pth')
    torch.save({'meta': {}, 'state_dict': model.converted()}, path)
    runner = _runner(tmp_path, model, _model_cfg(path))
    hook = PretrainedInitCheckHook()
    hook.before_run(runner)
    hook.before_train(runner)  # equal tensors in both modules: no error


def test_hook_rejects_missing_file(tmp_path):
    runner = _runner(tmp_path, _Detector(), _model_cfg(str(tmp_path / 'no.pth')))
    with pytest.raises(FileNotFoundError) as err:
        PretrainedInitCheckHook().before_run(runner)
    assert 'extract_backbone.py' in str(err.value)
    assert 'model.backbone.init_cfg.checkpoint' in str(err.value)
    # tools/test.py runs (no train loop) evaluate a fine-tuned checkpoint: not needed there
    PretrainedInitCheckHook().before_run(
        _runner(tmp_path, _Detector(), _model_cfg(str(tmp_path / 'no.pth')),
                training=False))


def test_hook_rejects_raw_pretraining_checkpoint(tmp_path):
    model = _Detector()
    raw = str(tmp_path / 'epoch_800.pth')
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in model.converted().items()}}, raw)
    cfg = dict(type='Det', backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=raw)))
    with pytest.raises(RuntimeError) as err:
        PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
    assert 'random initialisation' in str(err.value)
    assert 'extract_backbone.py' in str(err.value)
    # an mmpretrain classifier is fine with prefix='backbone.'
    cfg['backbone']['init_cfg']['prefix'] = 'backbone.'
    PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))


def test_hook_detects_weights_that_did_not_arrive(tmp_path):
    model = _Detector()
    path = str(tmp_path / 'bb.pth')
    torch.save({'state_dict': model.converted()}, path)
    cfg = _model_cfg(path)
    with torch.no_grad():
        model.roi_head.shared_head.layer4.weight.add_(1.0)  # as if init had not loaded the file
    hook = PretrainedInitCheckHook()
    with pytest.raises(RuntimeError, match='roi_head.shared_head: 1 tensors differ'):
        hook.before_train(_runner(tmp_path, model, cfg))
    # resumed / load_from runs replace the init on purpose: not checked
    hook.before_train(_runner(tmp_path, model, cfg, load_from='x.pth'))


def _half_width_file(tmp_path):
    """A converted half-width ResNet-18, as the demo pretraining (configs/knn_moco_demo.py)."""
    from mmdet.models.backbones import ResNet
    path = str(tmp_path / 'demo_backbone.pth')
    state = ResNet(depth=18, stem_channels=32, base_channels=32).state_dict()
    torch.save({'meta': {}, 'state_dict': state}, path)
    return path


def test_hook_names_the_c4_head_that_cannot_take_a_narrow_backbone(tmp_path):
    """mmdet's ResLayer (C4 res5 head) has no base_channels: stop before init, name DC5."""
    from mmdet.models.backbones import ResNet
    from mmdet.models.roi_heads.shared_heads import ResLayer
    path = _half_width_file(tmp_path)
    model = torch.nn.Module()
    # the backbone matches the file; the head cannot (it builds 64-base-channel res5)
    model.backbone = ResNet(depth=18, stem_channels=32, base_channels=32, num_stages=3,
                            strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, ))
    model.roi_head = torch.nn.Module()
    model.roi_head.shared_head = ResLayer(depth=18)
    with pytest.raises(RuntimeError) as err:
        PretrainedInitCheckHook().before_run(_runner(tmp_path, model, _model_cfg(path)))
    msg = str(err.value)
    assert msg.startswith("roi_head.shared_head is mmdet's ResLayer")
    assert 'no stem_channels / base_channels' in msg and '32 base channels' in msg
    named = re.findall(r'configs/[\w./-]+\.py', msg)
    assert any('dc5' in p for p in named) and any('/demo/' in p for p in named)
    for rel in named:
        assert osp.isfile(osp.join(ROOT, rel)), rel
    # the same C4 model is fine with a full-width file
    full = str(tmp_path / 'full.pth')
    torch.save({'state_dict': ResNet(depth=18).state_dict()}, full)
    model.backbone = ResNet(depth=18, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                            out_indices=(2, ))
    PretrainedInitCheckHook().before_run(_runner(tmp_path, model, _model_cfg(full)))


def test_hook_rejects_a_backbone_of_another_width(tmp_path):
    from mmdet.models.backbones import ResNet
    path = _half_width_file(tmp_path)
    model = torch.nn.Module()
    model.backbone = ResNet(depth=18)  # 64 channels: every key present, shapes differ
    cfg = dict(type='Det', backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(RuntimeError) as err:
        PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
    msg = str(err.value)
    assert 'backbone: ' in msg and 'other shapes' in msg
    assert 'conv1.weight: file (32, 3, 7, 7), model (64, 3, 7, 7)' in msg
    assert 'model.backbone.stem_channels=32 model.backbone.base_channels=32' in msg


# ------------------------------------------------- the hook under prefix='backbone.'

_NARROW = dict(depth=18, stem_channels=16, base_channels=16)


@pytest.fixture(scope='module')
def pretraining_files(tmp_path_factory):
    """A KNNMoCo-layout pretraining checkpoint of a quarter-width ResNet-18 (online,
    momentum, neck, queues), the converter's default output of it, and the same backbone
    with bare keys."""
    import importlib.util

    from mmdet.models.backbones import ResNet
    torch.manual_seed(0)
    online, momentum = (ResNet(**_NARROW).state_dict() for _ in range(2))
    for v in momentum.values():
        if v.is_floating_point():
            v.add_(1.0)  # the momentum encoder differs from the online one
    state = {f'backbone.{k}': v for k, v in online.items()}
    state.update({f'momentum_encoder.module.0.{k}': v for k, v in momentum.items()})
    state['neck.mlp.0.weight'] = torch.randn(4, 128)
    state['head.key_queue'] = torch.randn(4, 8)
    tmp_path = tmp_path_factory.mktemp('pretraining')
    raw = str(tmp_path / 'epoch_3.pth')
    torch.save({'meta': {'epoch': 3}, 'state_dict': state}, raw)
    spec = importlib.util.spec_from_file_location(
        'extract_backbone', osp.join(ROOT, 'tools/model_converters/extract_backbone.py'))
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    converted = str(tmp_path / 'converted.pth')
    converter.convert(raw, converted)
    bare = str(tmp_path / 'bare.pth')
    torch.save(dict(online), bare)
    return dict(raw=raw, converted=converted, bare=bare, online=online)


def _initialised(checkpoint, prefix):
    """An mmdet ResNet-18 that ran its init_cfg=Pretrained, and its model config."""
    from mmdet.models.backbones import ResNet
    init = dict(type='Pretrained', checkpoint=checkpoint, prefix=prefix)
    model = torch.nn.Module()
    model.backbone = ResNet(**_NARROW, init_cfg=init)
    model.backbone.init_weights()
    return model, dict(type='Det', backbone=dict(init_cfg=init))


@pytest.mark.parametrize('kind', ['raw', 'converted'])
def test_hook_passes_both_kinds_of_file_under_prefix_backbone(tmp_path, kind,
                                                             pretraining_files):
    files = pretraining_files
    model, cfg = _initialised(files[kind], 'backbone.')
    # the init really loaded the online encoder (not the momentum one)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, files['online'][k]), k
    hook = PretrainedInitCheckHook()
    hook.before_run(_runner(tmp_path, model, cfg))
    hook.before_train(_runner(tmp_path, model, cfg))
    # a tensor that did not arrive is caught under the prefix as well
    with torch.no_grad():
        model.backbone.layer4[1].bn2.running_var.add_(1.0)
    with pytest.raises(RuntimeError, match=r'backbone: 1 tensors differ .*'
                       r'layer4\.1\.bn2\.running_var'):
        hook.before_train(_runner(tmp_path, model, cfg))


def test_hook_names_prefix_backbone_for_a_pretraining_checkpoint_without_it(
        tmp_path, pretraining_files):
    files = pretraining_files
    model, _ = _initialised(files['bare'], None)
    for kind in ('raw', 'converted'):
        cfg = dict(type='Det', backbone=dict(init_cfg=dict(
            type='Pretrained', checkpoint=files[kind], prefix='')))
        with pytest.raises(RuntimeError) as err:
            PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
        msg = str(err.value)
        total = len(model.backbone.state_dict())  # none of them arrives
        assert msg.startswith(f'backbone: {total} of its tensors are not in'), msg
        assert 'random initialisation' in msg
        assert "set prefix='backbone.'" in msg
        assert '--cfg-options model.backbone.init_cfg.prefix=backbone.' in msg
        assert ('pretraining checkpoint' if kind == 'raw' else 'one-encoder file') in msg


def test_hook_bare_keys_pass_without_prefix_and_are_named_under_one(tmp_path,
                                                                   pretraining_files):
    files = pretraining_files
    model, cfg = _initialised(files['bare'], None)
    PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
    PretrainedInitCheckHook().before_train(_runner(tmp_path, model, cfg))
    cfg['backbone']['init_cfg']['prefix'] = 'backbone.'
    with pytest.raises(RuntimeError) as err:
        PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
    msg = str(err.value)
    assert 'holds bare backbone keys' in msg
    assert 'model.backbone.init_cfg.prefix=None' in msg


def test_hook_reads_the_release_layout_under_its_prefix(tmp_path, pretraining_files):
    """The official release (module.encoder_q.*, fc.* projection MLP): its prefix is named."""
    files = pretraining_files
    state = {f'module.encoder_q.{k}': v for k, v in files['online'].items()}
    state.update({f'module.encoder_k.{k}': v + 1 for k, v in files['online'].items()})
    state['module.encoder_q.fc.0.weight'] = torch.randn(4, 128)
    state['module.queue_backbone'] = torch.randn(128, 8)
    release = str(tmp_path / 'checkpoint_0199.pth.tar')
    torch.save({'epoch': 200, 'state_dict': state}, release)
    model, cfg = _initialised(release, 'module.encoder_q.')
    PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
    PretrainedInitCheckHook().before_train(_runner(tmp_path, model, cfg))
    cfg['backbone']['init_cfg']['prefix'] = 'backbone.'
    with pytest.raises(RuntimeError) as err:
        PretrainedInitCheckHook().before_run(_runner(tmp_path, model, cfg))
    assert "official release" in str(err.value)
    assert "set prefix='module.encoder_q.'" in str(err.value)
