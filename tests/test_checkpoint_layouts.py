"""revisit_ssl.utils.checkpoint_layouts: every layout detected and extracted exactly, the safe
loader's refusals, and the Pretrained-init emulation against mmengine's own loader."""
from collections import OrderedDict

import pytest
import torch

from revisit_ssl.utils import checkpoint_layouts as cl

# a few backbone keys of each kind (conv, BN affine and statistics, downsample, counter)
_BACKBONE_KEYS = ('conv1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight',
                  'layer2.0.downsample.1.weight', 'layer4.1.bn2.num_batches_tracked')


def _encoder(seed: int) -> 'OrderedDict[str, torch.Tensor]':
    """Distinct values per key and per seed, so that a mixed-up tensor cannot match."""
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict((k, torch.randn(3, generator=gen)) for k in _BACKBONE_KEYS)


def _file(layout: cl.CheckpointLayout, extra: dict) -> dict:
    state = OrderedDict()
    state.update((layout.online_prefix + k, v) for k, v in _encoder(1).items())
    if layout.momentum_prefix is not None:
        state.update((layout.momentum_prefix + k, v) for k, v in _encoder(2).items())
    state.update(extra)
    return state


T = torch.zeros(2)
# each layout with what its writer stores next to the encoders
CASES = [
    (cl.KNN_MOCO, {'neck.mlp.0.weight': T, 'momentum_encoder.module.1.mlp.0.weight': T,
                   'momentum_encoder.steps': T, 'head.key_queue': T,
                   'head.backbone_queue': T, 'head.queue_ptr': T}),
    (cl.MMPRETRAIN_DENSECL, {'neck.mlp.0.weight': T, 'queue': T, 'queue2': T}),
    (cl.MMPRETRAIN_MOCO, {'neck.mlp.0.weight': T, 'encoder_k.module.1.mlp.0.weight': T,
                          'queue': T, 'queue_ptr': T}),
    (cl.MMPRETRAIN_MOCOV3, {'neck.mlp.0.weight': T, 'head.predictor.mlp.0.weight': T}),
    (cl.MMPRETRAIN_BYOL, {'neck.mlp.0.weight': T, 'target_net.module.1.mlp.0.weight': T,
                          'head.predictor.mlp.0.weight': T}),
    (cl.RELEASE_KNN_MOCO, {'module.encoder_q.fc.0.weight': T, 'module.encoder_q.fc.2.bias': T,
                           'module.encoder_k.fc.0.weight': T, 'module.queue': T,
                           'module.queue_ptr': T, 'module.queue_backbone': T}),
    (cl.OFFICIAL_MOCO, {'module.encoder_q.fc.0.weight': T, 'module.encoder_k.fc.0.weight': T,
                        'module.queue': T}),
    (cl.PREFIXED_BACKBONE, {'head.fc.weight': T}),  # an mmpretrain classifier
    (cl.PREFIXED_BACKBONE, {}),  # the converter's output
    (cl.BARE_BACKBONE, {'fc.weight': T, 'fc.bias': T}),  # torchvision
]


def test_every_layout_has_a_case_and_distinct_prefixes():
    assert {layout for layout, _ in CASES} == set(cl.LAYOUTS)
    for layout in cl.PRETRAINING_LAYOUTS:
        assert layout.is_pretraining and layout.online_prefix != layout.momentum_prefix


@pytest.mark.parametrize('layout, extra', CASES, ids=lambda c: getattr(c, 'name', ''))
def test_detect_and_extract(layout, extra):
    state = _file(layout, extra)
    assert cl.detect_layout(state) is layout
    assert cl.detect_layout(list(state)) is layout  # keys are enough
    online = cl.extract_encoder(state, 'online')
    assert online.layout is layout and online.prefix == layout.online_prefix
    expected = _encoder(1)
    if layout is cl.BARE_BACKBONE:
        # a bare file's other keys cannot be told apart from backbone keys: the loader
        # reports them as keys the backbone does not have
        expected.update(extra)
    assert list(online.backbone) == list(expected)
    for key, value in expected.items():
        assert torch.equal(online.backbone[key], value), key
    # the official code's projection MLP is the encoder's, but not backbone
    assert list(online.head) == [
        k[len(layout.online_prefix):] for k in extra
        if layout.head_keys and k.startswith(layout.online_prefix)]
    if layout.is_pretraining:
        momentum = cl.extract_encoder(state, 'momentum')
        assert momentum.prefix == layout.momentum_prefix
        assert list(momentum.backbone) == list(_BACKBONE_KEYS)
        for key, value in _encoder(2).items():
            assert torch.equal(momentum.backbone[key], value), key
        assert layout.revise_keys('momentum') == [
            (f'^{layout.momentum_prefix.replace(".", chr(92) + ".")}', '')]
    else:
        with pytest.raises(cl.LayoutError, match=r'no momentum backbone in x\.pth: it '
                           rf'holds one encoder \({layout.name[:8]}'):
            cl.extract_encoder(state, 'momentum', path='x.pth')


def test_layouts_sharing_prefixes_are_told_apart_by_their_marker():
    knn = _file(cl.KNN_MOCO, {'head.key_queue': T})
    assert cl.detect_layout(knn) is cl.KNN_MOCO
    del knn['head.key_queue']
    assert cl.detect_layout(knn) is cl.MMPRETRAIN_MOCOV3
    release = _file(cl.OFFICIAL_MOCO, {'module.queue_backbone': T})
    assert cl.detect_layout(release) is cl.RELEASE_KNN_MOCO
    # an online encoder alone under module.encoder_q. is no known layout: read as bare
    half = {k: v for k, v in release.items() if not k.startswith('module.encoder_k.')}
    assert cl.detect_layout(half) is cl.BARE_BACKBONE


def test_encoder_name_is_checked():
    with pytest.raises(ValueError, match=r"\['online', 'momentum'\], got 'key'"):
        cl.extract_encoder(_file(cl.KNN_MOCO, {}), 'key')


class _NotAllowListed:
    """A class torch's safe unpickler refuses (pickled by reference)."""


def test_safe_loader(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': {'a': T}}, good)
    ckpt = cl.load_checkpoint_file(str(good))
    assert ckpt['meta'] == {'epoch': 1} and torch.equal(cl.state_dict_of(ckpt)['a'], T)
    assert cl.state_dict_of({'a': T}) == {'a': T}  # a bare state dict is its own
    with pytest.raises(FileNotFoundError, match=r"'.*nope.pth' does not exist \(pass a "
                       r'\.pth written by tools/train\.py'):
        cl.load_checkpoint_file(str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=r'\(pass THIS\)'):
        cl.load_checkpoint_file(str(tmp_path / 'nope.pth'), what_to_pass='THIS')
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': {'a': T}, 'extra': _NotAllowListed()}, unsafe)
    with pytest.raises(cl.CheckpointLoadError) as err:
        cl.load_checkpoint_file(str(unsafe))
    assert '_NotAllowListed' in str(err.value)
    assert 'revisit_ssl/utils/checkpoint.py' in str(err.value)
    listed = tmp_path / 'list.pth'
    torch.save([T], listed)
    with pytest.raises(TypeError, match='holds a list, not a checkpoint dict'):
        cl.load_checkpoint_file(str(listed))


@pytest.mark.parametrize('prefix', [None, 'backbone.', 'backbone', 'module.encoder_q.',
                                    'momentum_encoder.module.0.'])
def test_pretrained_init_state_dict_is_what_mmengine_loads(tmp_path, prefix):
    """Against mmengine's own loaders (what init_cfg=Pretrained calls)."""
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_with_prefix)
    state = _file(cl.KNN_MOCO, {'head.key_queue': T})
    state.update(_file(cl.OFFICIAL_MOCO, {}))
    state['module.conv1.weight'] = torch.ones(1)  # DataParallel-wrapped bare key
    path = str(tmp_path / 'mixed.pth')
    torch.save({'state_dict': state}, path)
    ours = cl.pretrained_init_state_dict(state, prefix)
    if prefix is None:
        import re
        theirs = {re.sub(r'^module\.', '', k): v
                  for k, v in _load_checkpoint(path)['state_dict'].items()}
        assert 'conv1.weight' in ours and 'encoder_q.conv1.weight' in ours
        assert cl.pretrained_init_state_dict(state, '') == ours  # '' reads as no prefix
    else:
        theirs = _load_checkpoint_with_prefix(prefix, path)
    assert list(ours) == list(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert cl.pretrained_init_state_dict(state, 'no_such.') == {}


@pytest.mark.parametrize('depth, stem, base, feat', [(18, 64, 64, 512), (34, 32, 16, 128),
                                                      (50, 64, 64, 2048), (18, 8, 8, 64)])
def test_resnet_depth_and_widths(depth, stem, base, feat):
    from mmpretrain.models import ResNet
    state = ResNet(depth=depth, stem_channels=stem, base_channels=base).state_dict()
    assert cl.resnet_depth(state) == depth
    assert cl.resnet_widths(state) == (stem, base, feat)
    state = {k: v for k, v in state.items() if not k.startswith('layer4.1.')}
    assert cl.resnet_depth(state) is None  # unusual block counts
