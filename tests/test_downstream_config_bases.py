"""The downstream configs over shared bases (issue 16, items 2 and 4) resolve to the recipes
they were before the refactor.

``tests/fixtures/downstream_configs_before_bases.json`` holds ``Config.fromfile(leaf).to_dict()``
of every leaf under configs/downstream/{mmseg,mmdet}, captured from the self-contained configs
before they inherited configs/downstream/{_base_,mmseg/_base_,mmdet/_base_}. Each leaf must
resolve to exactly that dict, up to the differences listed in ``intended`` (item 2: the
pretraining checkpoint read as tools/train.py writes it, through ``prefix='backbone.'``).
A recipe that changes on purpose changes this test's ``intended`` with it.
"""
import copy
import difflib
import functools
import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOWNSTREAM = osp.join(ROOT, 'configs', 'downstream')
BEFORE = json.load(
    open(osp.join(ROOT, 'tests', 'fixtures', 'downstream_configs_before_bases.json')))

R50_CHECKPOINT = 'work_dirs/knn_moco_coco/epoch_200.pth'  # configs/knn_moco_coco.py's last
DEMO_CHECKPOINT = 'work_dirs/knn_moco_demo/epoch_40.pth'  # configs/knn_moco_demo.py's last
# the two helper dicts of configs/downstream/_base_/knn_moco_pretrained.py, as written there
KNN_MOCO_BACKBONE = dict(
    type='ResNet',
    depth=50,
    style='pytorch',
    frozen_stages=-1,
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    norm_eval=False,
    init_cfg=dict(type='Pretrained', checkpoint=R50_CHECKPOINT, prefix='backbone.'))
KNN_MOCO_PREPROCESSOR = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


def _leaves():
    return sorted(
        osp.relpath(p, ROOT)
        for family in ('mmseg', 'mmdet')
        for p in glob.glob(osp.join(DOWNSTREAM, family, '**', '*.py'), recursive=True)
        if '/_base_/' not in p)


@functools.lru_cache(maxsize=None)
def _resolved_text(rel: str) -> str:
    return json.dumps(Config.fromfile(osp.join(ROOT, rel)).to_dict())


def resolved(rel: str) -> dict:
    """The merged config as JSON types (tuples -> lists), as the fixture stores it."""
    return json.loads(_resolved_text(rel))


def _walk(node, fn):
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, list):
        for value in node:
            _walk(value, fn)


def intended(rel: str, before: dict) -> dict:
    """``before`` with the differences the refactor makes on purpose."""
    want = copy.deepcopy(before)
    checkpoint = DEMO_CHECKPOINT if '/demo/' in rel else R50_CHECKPOINT
    # item 2: the raw pretraining checkpoint, read through prefix='backbone.' (backbone and
    # the C4 res5 head), instead of the converter's output under checkpoints/
    want['pretrained_backbone'] = checkpoint
    _walk(
        want, lambda n: n.update(checkpoint=checkpoint, prefix='backbone.')
        if n.get('type') == 'Pretrained' else None)
    # the shared base's two helper dicts are visible in the merged config
    want['knn_moco_backbone'] = KNN_MOCO_BACKBONE
    want['knn_moco_preprocessor'] = KNN_MOCO_PREPROCESSOR
    if '/mmseg/' in rel:
        # stated for both families ("every layer fine-tuned"); mmseg's ResNet default
        want['model']['backbone']['frozen_stages'] = -1
    if 'nyud-depth' in rel:
        # the depth head merges into the segmentation ASPP head instead of restating it;
        # ASPPDepthHead accepts (and requires) num_classes == 1
        want['model']['decode_head']['num_classes'] = 1
    return json.loads(json.dumps(want))


def test_fixture_covers_every_leaf():
    assert _leaves() == sorted(BEFORE)
    assert len(BEFORE) == 8


@pytest.mark.parametrize('rel', sorted(BEFORE), ids=osp.basename)
def test_leaf_resolves_to_the_recipe_it_was(rel):
    want = intended(rel, BEFORE[rel])
    got = resolved(rel)
    if got != want:
        diff = difflib.unified_diff(
            json.dumps(want, indent=1, sort_keys=True).splitlines(),
            json.dumps(got, indent=1, sort_keys=True).splitlines(),
            'expected', 'resolved', lineterm='', n=2)
        pytest.fail(f'{rel} resolves differently:\n' + '\n'.join(list(diff)[:80]))


def test_intended_changes_are_real():
    """The comparison above is not vacuous: the fixture lacks what the refactor adds."""
    voc = 'configs/downstream/mmseg/fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py'
    c4 = 'configs/downstream/mmdet/faster-rcnn_r50-c4_knn-moco-pre_8xb2-24k_voc0712.py'
    assert 'prefix' not in BEFORE[voc]['model']['backbone']['init_cfg']
    assert resolved(voc)['model']['backbone']['init_cfg']['prefix'] == 'backbone.'
    shared = resolved(c4)['model']['roi_head']['shared_head']['init_cfg']
    assert shared == dict(type='Pretrained', checkpoint=R50_CHECKPOINT, prefix='backbone.')


# Keys a demo leaf may change against its recipe: data paths and layouts, image sizes,
# schedule length and batch, logging / checkpoint intervals, the demo backbone's width (and
# the channels that follow from it), the checkpoint, and the RoI counts of the CPU run.
DEMO_MAY_CHANGE = {
    'data_root', 'data_layout', 'ann_file', 'sub_data_root', 'scale', 'scales', 'crop_size',
    'size', 'depth', 'stem_channels', 'base_channels', 'in_channels', 'out_channels',
    'feat_channels', 'checkpoint', 'pretrained_backbone', 'batch_size', 'num_workers',
    'max_epochs', 'max_iters', 'val_interval', 'interval', 'end', 'milestones', 'lr',
    'base_batch_size', 'max_per_img', 'num', 'backend_args', '_scope_'
}
DEMOS = {
    'configs/downstream/mmseg/demo/fcn_r18-w32-d16_knn-moco-demo_1xb8-2e_demo-voc12aug-96x96.py':
    'configs/downstream/mmseg/fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py',
    'configs/downstream/mmdet/demo/'
    'faster-rcnn_r18-w32-dc5_knn-moco-demo_1xb4-100i_demo-voc0712.py':
    'configs/downstream/mmdet/faster-rcnn_r50-dc5_knn-moco-pre_8xb2-24k_voc0712.py',
}


def _strip(node):
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in DEMO_MAY_CHANGE}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


@pytest.mark.parametrize('demo', sorted(DEMOS), ids=osp.basename)
def test_demo_changes_only_data_sizes_and_schedule(demo):
    recipe = _strip(resolved(DEMOS[demo]))
    got = _strip(resolved(demo))
    # the demo trains on fewer parts of the same kind (one VOC2012 part for VOC07 + VOC12)
    parts = got['train_dataloader']['dataset'].pop('datasets')
    recipe_parts = recipe['train_dataloader']['dataset'].pop('datasets')
    assert parts and all(part in recipe_parts for part in parts)
    assert got == recipe
    # and the stripped keys did change, i.e. the demo is not the recipe
    full = resolved(demo)
    assert full['model']['backbone']['depth'] == 18
    assert full['model']['backbone']['init_cfg']['checkpoint'] == DEMO_CHECKPOINT
