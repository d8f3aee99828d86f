"""Backbone + normalisation from a config and a checkpoint; VOC annotation reading."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from revisit_ssl.evaluation import (FeatureExtractor, ImageNormalizer,
                                    backbone_state_dict, eval_pipeline,
                                    load_backbone, load_voc_classification)

CFG = dict(
    model=dict(
        type='MoCo',
        queue_len=32,
        feat_dim=16,
        momentum=0.5,
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor',
            mean=[10.0, 20.0, 30.0],
            std=[2.0, 4.0, 5.0],
            to_rgb=True),
        backbone=dict(type='ResNet', depth=18),
        neck=dict(
            type='MoCoV2Neck', in_channels=512, hid_channels=32,
            out_channels=16),
        head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'))))


@pytest.fixture(scope='module')
def moco_ckpt(tmp_path_factory):
    """A MoCo checkpoint whose momentum encoder differs from the online one."""
    torch.manual_seed(0)
    model = MODELS.build(Config(CFG).model)
    with torch.no_grad():
        for p in model.encoder_k.module[0].parameters():
            p.add_(1.0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'moco.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 3,
                                                          'iter': 30}}, path)
    return path, model


def _same_weights(module, reference):
    ref = reference.state_dict()
    return all(torch.equal(v, ref[k]) for k, v in module.state_dict().items())


def test_online_and_momentum_backbones(moco_ckpt):
    path, model = moco_ckpt
    online, info = load_backbone(CFG, path, 'online')
    assert info['prefix'] == 'backbone.' and info['epoch'] == 3
    assert _same_weights(online, model.backbone)
    momentum, info = load_backbone(CFG, path, 'momentum')
    assert info['prefix'] == 'encoder_k.module.0.'
    assert _same_weights(momentum, model.encoder_k.module[0])
    assert not _same_weights(momentum, model.backbone)
    assert not online.training
    assert not any(p.requires_grad for p in online.parameters())


def test_knn_moco_key_layout():
    state = {
        'backbone.conv1.weight': torch.zeros(1),
        'neck.mlp.0.weight': torch.zeros(1),
        'momentum_encoder.module.0.conv1.weight': torch.ones(1),
        'momentum_encoder.module.1.mlp.0.weight': torch.ones(1),
        'head.backbone_queue': torch.ones(2, 2),
    }
    online, prefix = backbone_state_dict({'state_dict': state}, 'online')
    assert prefix == 'backbone.' and list(online) == ['conv1.weight']
    momentum, prefix = backbone_state_dict({'state_dict': state}, 'momentum')
    assert prefix == 'momentum_encoder.module.0.'
    assert list(momentum) == ['conv1.weight'] and momentum[
        'conv1.weight'].item() == 1


def test_converted_backbone_only_file(moco_ckpt, tmp_path):
    _, model = moco_ckpt
    state = {k: v for k, v in model.backbone.state_dict().items()
             if not k.endswith('num_batches_tracked')}
    state['fc.weight'] = torch.zeros(10, 512)  # torchvision's classifier
    state['fc.bias'] = torch.zeros(10)
    path = str(tmp_path / 'converted.pth')
    torch.save(state, path)
    backbone, info = load_backbone(CFG, path)
    assert info['prefix'] == '' and info['ignored_keys'] == ['fc.bias',
                                                             'fc.weight']
    assert _same_weights(backbone, model.backbone)
    with pytest.raises(KeyError, match='no momentum backbone'):
        load_backbone(CFG, path, 'momentum')


def test_converter_output_both_encoders(moco_ckpt, tmp_path):
    """The converter's default (backbone.*) output of either encoder loads back exactly."""
    import importlib.util
    path, model = moco_ckpt
    spec = importlib.util.spec_from_file_location(
        'extract_backbone',
        osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                 'tools/model_converters/extract_backbone.py'))
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    for momentum, reference in ((False, model.backbone),
                                (True, model.encoder_k.module[0])):
        out = str(tmp_path / f'converted_{momentum}.pth')
        converter.convert(path, out, momentum_encoder=momentum)
        backbone, info = load_backbone(CFG, out)
        assert info['prefix'] == 'backbone.' and info['ignored_keys'] == []
        assert _same_weights(backbone, reference)
    with pytest.raises(KeyError, match='no momentum backbone.*use --encoder online'):
        load_backbone(CFG, out, 'momentum')


def test_release_layout_drops_its_projection_mlp(moco_ckpt, tmp_path):
    """The official release's DataParallel keys: module.encoder_q.* (fc.* is the MLP)."""
    _, model = moco_ckpt
    state = {}
    for prefix, part in (('module.encoder_q.', model.backbone),
                         ('module.encoder_k.', model.encoder_k.module[0])):
        state.update((prefix + k, v) for k, v in part.state_dict().items())
        state[prefix + 'fc.0.weight'] = torch.zeros(512, 512)
        state[prefix + 'fc.2.bias'] = torch.zeros(16)
    state['module.queue'] = torch.zeros(16, 32)
    path = str(tmp_path / 'checkpoint_0199.pth.tar')
    torch.save({'epoch': 200, 'arch': 'resnet18', 'state_dict': state}, path)
    online, info = load_backbone(CFG, path)
    assert info['prefix'] == 'module.encoder_q.'
    assert info['ignored_keys'] == ['fc.0.weight', 'fc.2.bias']
    assert _same_weights(online, model.backbone)
    momentum, info = load_backbone(CFG, path, 'momentum')
    assert info['prefix'] == 'module.encoder_k.'
    assert _same_weights(momentum, model.encoder_k.module[0])


def test_another_width_is_refused_by_shape(tmp_path):
    from mmpretrain.models import ResNet
    narrow = ResNet(depth=18, stem_channels=32, base_channels=32).state_dict()
    path = str(tmp_path / 'narrow.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in narrow.items()}}, path)
    with pytest.raises(RuntimeError, match=r'size mismatch for conv1\.weight'):
        load_backbone(CFG, path)


def test_incomplete_checkpoint_and_missing_file(moco_ckpt, tmp_path):
    _, model = moco_ckpt
    state = {f'backbone.{k}': v for k, v in model.backbone.state_dict().items()
             if not k.startswith('layer4')}
    path = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(KeyError, match='lacks .* backbone weights'):
        load_backbone(CFG, path)
    with pytest.raises(FileNotFoundError, match='random'):
        load_backbone(CFG, str(tmp_path / 'nope.pth'))
    with pytest.raises(KeyError, match='model.backbone'):
        load_backbone(dict(model=dict(type='MoCo')), 'random')


def test_random_init_is_the_configured_init_and_reproducible():
    state = torch.random.get_rng_state()
    a, info = load_backbone(CFG, 'random')
    torch.randn(5)  # whatever the global RNG did in between
    b, _ = load_backbone(CFG, 'random')
    c, _ = load_backbone(CFG, 'random', seed=1)
    assert 'prefix' not in info and info['seed'] == 0
    assert _same_weights(a, b) and not _same_weights(a, c)
    # the caller's RNG stream is left alone
    torch.random.set_rng_state(state)
    expected = torch.randn(3)
    torch.random.set_rng_state(state)
    load_backbone(CFG, 'random')
    torch.testing.assert_close(torch.randn(3), expected)
    # ResNet's init_cfg: BN weights constant 1
    assert torch.all(a.bn1.weight == 1)


def test_normalizer_from_config_and_module_agree():
    from_cfg = ImageNormalizer.from_config(Config(CFG))
    pre = MODELS.build(CFG['model']['data_preprocessor'])
    from_module = ImageNormalizer.from_data_preprocessor(pre)
    pixel = torch.tensor([30.0, 20.0, 10.0]).view(1, 3, 1, 1)  # B, G, R
    expected = torch.tensor([(10 - 10) / 2, (20 - 20) / 4, (30 - 30) / 5])
    for norm in (from_cfg, from_module):
        torch.testing.assert_close(norm(pixel).flatten(), expected)
    # a list of equal-size images is stacked; differing sizes are refused
    assert from_cfg([torch.zeros(3, 4, 4)] * 2).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match='differ in size'):
        from_cfg([torch.zeros(3, 4, 4), torch.zeros(3, 5, 4)])


def test_feature_extractor_pools_and_normalises():
    backbone, _ = load_backbone(CFG, 'random')
    extractor = FeatureExtractor(backbone, ImageNormalizer())
    imgs = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    feats = extractor(imgs)
    assert feats.shape == (3, 512)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3))
    dense = FeatureExtractor(backbone, ImageNormalizer(), pool=False,
                             l2_normalize=False)(imgs)
    assert dense.shape == (3, 512, 1, 1)
    torch.testing.assert_close(
        torch.nn.functional.normalize(dense.flatten(1), dim=1), feats)


def test_eval_pipeline_sizes():
    resize, crop = eval_pipeline(224)[1:3]
    assert resize['scale'] == 256 and crop['crop_size'] == 224
    assert eval_pipeline(64)[1]['scale'] == 73
    with pytest.raises(ValueError, match='smaller'):
        eval_pipeline(64, 32)


def _xml(objects):
    body = ''.join(
        f'<object><name>{n}</name><difficult>{int(d)}</difficult></object>'
        for n, d in objects)
    return f'<annotation>{body}</annotation>'


def test_voc_classification_reading(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'Annotations'))
    os.makedirs(osp.join(root, 'ImageSets', 'Main'))
    anns = {
        'a': [('dog', False), ('dog', True), ('cat', True)],
        'b': [('cat', False)],
        'c': [],
    }
    for img_id, objects in anns.items():
        with open(osp.join(root, 'Annotations', f'{img_id}.xml'), 'w') as f:
            f.write(_xml(objects))
    with open(osp.join(root, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write('a\nb\nc\n')
    split = load_voc_classification(root, 'trainval')
    assert len(split.classes) == 20  # all names are VOC's: the VOC2007 order
    cat, dog = split.classes.index('cat'), split.classes.index('dog')
    # a: dog easy (+ a difficult dog: still a target), cat only difficult
    assert split.targets[0, dog] and not split.difficult[0, dog]
    assert not split.targets[0, cat] and split.difficult[0, cat]
    assert split.targets[1, cat] and split.targets.sum() == 2
    assert not split.targets[2].any()
    assert split.img_paths[1] == osp.join(root, 'JPEGImages', 'b.jpg')
    # non-VOC names: sorted names of the split; an unknown name is refused
    with open(osp.join(root, 'Annotations', 'c.xml'), 'w') as f:
        f.write(_xml([('zebra', False)]))
    split = load_voc_classification(root, 'trainval')
    assert split.classes == ('cat', 'dog', 'zebra')
    with pytest.raises(ValueError, match='zebra'):
        load_voc_classification(root, 'trainval', classes=('cat', 'dog'))
    with pytest.raises(FileNotFoundError, match='ImageSets'):
        load_voc_classification(root, 'test')
    np.testing.assert_array_equal(split.targets.sum(0), [1, 1, 1])
