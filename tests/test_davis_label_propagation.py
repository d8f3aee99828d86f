"""DAVIS-2017 label propagation (kNN-MoCo paper, Tables 3 and 5) and the J / F scores.

* J, boundary maps, F, recall / decay on tiny masks against values worked out by hand, and F
  against a brute-force distance check over random masks;
* the propagation against a loop-by-loop implementation of the protocol on random features;
* a perfect (colour one-hot) feature reproduces the moving boxes of a procedural DAVIS folder
  exactly, and the written PNGs keep the frame size and the annotation palette;
* the command line on that folder with a random half-width ResNet-18 (stride-8 features);
* missing layout pieces name the flag.
"""
import importlib.util
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from revisit_ssl.evaluation.davis_metrics import (
    DAVISScores, boundary_f_measure, boundary_map, boundary_tolerance,
    db_statistics, evaluate_sequence, region_similarity)
from revisit_ssl.evaluation.label_propagation import (
    backbone_stride8_overrides, context_frames, load_davis_split,
    propagate_davis_sequence, propagate_labels, read_annotation)
from revisit_ssl.utils.davis_demo import (BACKGROUND_COLOUR, OBJECT_COLOURS,
                                          make_davis_demo)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _square(shape, top, left, size):
    mask = np.zeros(shape, bool)
    mask[top:top + size, left:left + size] = True
    return mask


# --------------------------------------------------------------------------- J and F


def test_region_similarity_by_hand():
    gt = _square((6, 6), 1, 1, 3)
    pred = _square((6, 6), 2, 2, 3)
    # 3x3 squares overlapping in 2x2: 4 / (9 + 9 - 4)
    assert region_similarity(gt, pred) == pytest.approx(4 / 14)
    assert region_similarity(gt, gt) == 1.0
    assert region_similarity(gt, np.zeros_like(gt)) == 0.0
    empty = np.zeros((6, 6), bool)
    assert region_similarity(empty, empty) == 1.0  # the toolkit's convention


def test_boundary_map_by_hand():
    # a 3x3 square at rows/cols 1..3: its boundary is the ring of the 4x4 box at 0..3,
    # half a pixel towards the origin (each pixel compares right, below, below-right)
    bmap = boundary_map(_square((6, 6), 1, 1, 3))
    ring = _square((6, 6), 0, 0, 4) & ~_square((6, 6), 1, 1, 2)
    np.testing.assert_array_equal(bmap, ring)
    # last row / column: only the right resp. lower neighbour counts, the corner never
    full = np.ones((3, 3), bool)
    assert not boundary_map(full).any()
    corner = np.zeros((3, 3), bool)
    corner[2, 2] = True
    expected = np.zeros((3, 3), bool)
    expected[1, 1] = expected[1, 2] = expected[2, 1] = True
    np.testing.assert_array_equal(boundary_map(corner), expected)


def test_boundary_tolerance():
    assert boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.7)
    assert boundary_tolerance((6, 6)) == 1
    assert boundary_tolerance((6, 6), bound_th=3) == 3


def test_boundary_f_by_hand():
    gt = _square((6, 6), 1, 1, 3)
    pred = _square((6, 6), 2, 2, 3)
    # boundaries: rings of the boxes 0..3 and 1..4. With a radius-1 disk (a plus sign)
    # every pred ring pixel has a gt ring pixel next to it but (4, 4); symmetrically every gt
    # ring pixel but (0, 0): precision = recall = 11/12
    assert boundary_f_measure(gt, pred) == pytest.approx(11 / 12)
    # radius 2 reaches the diagonal neighbour (3, 3) of (4, 4)
    assert boundary_f_measure(gt, pred, bound_th=2) == pytest.approx(1.0)
    empty = np.zeros((6, 6), bool)
    assert boundary_f_measure(gt, empty) == 0.0
    assert boundary_f_measure(empty, pred) == 0.0
    assert boundary_f_measure(empty, empty) == 1.0


def _bruteforce_f(gt, pred, radius):
    gb, pb = np.argwhere(boundary_map(gt)), np.argwhere(boundary_map(pred))
    if len(gb) == 0 and len(pb) == 0:
        return 1.0
    if len(gb) == 0 or len(pb) == 0:
        return 0.0
    dist = np.sqrt(((gb[:, None] - pb[None]).astype(float)**2).sum(-1))
    recall = (dist.min(1) <= radius).mean()
    precision = (dist.min(0) <= radius).mean()
    return 0.0 if precision + recall == 0 else (2 * precision * recall /
                                                (precision + recall))


def test_boundary_f_matches_distance_definition():
    rng = np.random.default_rng(0)
    for draw in range(40):
        shape = tuple(rng.integers(5, 14, size=2))
        gt = rng.random(shape) < rng.uniform(0.1, 0.7)
        pred = rng.random(shape) < rng.uniform(0.1, 0.7)
        radius = int(rng.integers(1, 4))
        assert boundary_f_measure(gt, pred, bound_th=radius) == pytest.approx(
            _bruteforce_f(gt, pred, radius)), draw


def test_db_statistics_by_hand():
    mean, recall, decay = db_statistics([1.0, 0.4, 0.6, 0.2, 0.8])
    assert mean == pytest.approx(0.6)
    assert recall == pytest.approx(3 / 5)
    # bins [0:2], [1:3], [2:4], [3:5]: mean(1, .4) - mean(.2, .8)
    assert decay == pytest.approx(0.7 - 0.5)


def test_sequence_scores_skip_first_and_last_frame():
    shape = (6, 6)
    gt = np.zeros((4, ) + shape, np.int64)
    for t in range(4):
        gt[t][_square(shape, 1, 1, 3)] = 1
        gt[t][_square(shape, 4, 0, 2)] = 2
    gt[0, 0, 5] = 255  # void: background for the toolkit
    pred = gt.copy()
    pred[pred == 255] = 0
    pred[0] = 0  # first and last frames are not scored
    pred[3] = 2
    pred[2][pred[2] == 1] = 0
    pred[2][_square(shape, 2, 2, 3)] = 1  # object 1 shifted in frame 2
    res = evaluate_sequence(gt, pred)
    np.testing.assert_allclose(res['J'], [[1.0, 4 / 14], [1.0, 1.0]])
    np.testing.assert_allclose(res['F'][0], [1.0, 11 / 12])
    scores = DAVISScores()
    rows = scores.add('seq', gt, pred)
    assert [r['object'] for r in rows] == ['seq_1', 'seq_2']
    summary = scores.summary()
    j_mean = ((1 + 4 / 14) / 2 + 1) / 2
    f_mean = ((1 + 11 / 12) / 2 + 1) / 2
    assert summary['J-Mean'] == pytest.approx(j_mean)
    assert summary['F-Mean'] == pytest.approx(f_mean)
    assert summary['J&F-Mean'] == pytest.approx((j_mean + f_mean) / 2)
    # an object the prediction never paints scores 0; an unknown id is an error
    gone = pred.copy()
    gone[gone == 2] = 0
    assert evaluate_sequence(gt, gone)['J'][1].tolist() == [0.0, 0.0]
    bad = pred.copy()
    bad[1, 0, 0] = 3
    with pytest.raises(ValueError, match='only 2 objects'):
        evaluate_sequence(gt, bad)
    with pytest.raises(ValueError, match='first and last'):
        evaluate_sequence(gt[:2], pred[:2])


# --------------------------------------------------------------------------- propagation


def test_context_frames_follow_the_reference():
    # 20 recent frames, missing ones are copies of frame 0, plus frame 0 itself
    assert context_frames(1) == ([0], [0] * 20)
    assert context_frames(5) == ([0], [0] * 16 + [1, 2, 3, 4])
    assert context_frames(25) == ([0], list(range(5, 25)))
    assert context_frames(5, pad=False) == ([0], [1, 2, 3, 4])


def _loop_propagation(feats, first, topk, n_context, radius, temperature, pad):
    """The protocol written pixel by pixel in numpy (restricted keys left out)."""
    feats = feats.numpy().astype(np.float64)
    num_frames, _, h, w = feats.shape
    labels = np.zeros((num_frames, first.shape[0], h, w))
    labels[0] = first.numpy()
    for t in range(1, num_frames):
        if pad:
            recent = [max(0, t - n_context + j) for j in range(n_context)]
        else:
            recent = [f for f in range(max(0, t - n_context), t) if f != 0]
        for qy in range(h):
            for qx in range(w):
                cands = []
                for frame, restricted in [(0, False)] + [(f, True)
                                                         for f in recent]:
                    for ky in range(h):
                        for kx in range(w):
                            if restricted and math.hypot(qy - ky,
                                                         qx - kx) >= radius:
                                continue
                            score = feats[frame, :, ky, kx] @ feats[t, :, qy,
                                                                    qx]
                            cands.append((score, labels[frame, :, ky, kx]))
                cands.sort(key=lambda c: -c[0])
                top = cands[:topk]
                scores = np.array([c[0] for c in top]) / temperature
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                labels[t, :, qy,
                       qx] = sum(wgt * lab
                                 for wgt, (_, lab) in zip(weights, top))
    return labels


@pytest.mark.parametrize('pad', [True, False])
@pytest.mark.parametrize('topk', [3, 20])
def test_propagation_matches_pixel_loops(pad, topk):
    # padding repeats frame 0 (t = 1: three copies, one unrestricted); top-20 of a corner
    # cell takes every allowed key of a padded context, some of them several times
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        feats = F.normalize(torch.randn(5, 4, 3, 4, generator=gen), dim=1)
        first = torch.rand(3, 3, 4, generator=gen)
        out = propagate_labels(feats,
                               first,
                               topk=topk,
                               n_context=2,
                               radius=1.5,
                               temperature=0.1,
                               pad_context=pad,
                               max_elements=7)  # tiny chunks: the chunking too
        expected = _loop_propagation(feats, first, topk, 2, 1.5, 0.1, pad)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- DAVIS folder

_COLOURS_BGR = torch.tensor([BACKGROUND_COLOUR] + list(OBJECT_COLOURS),
                            dtype=torch.float32)[:, [2, 1, 0]]


def colour_onehot_features(frames: torch.Tensor) -> torch.Tensor:
    """A perfect stride-1 feature: the one-hot of each pixel's nearest box colour."""
    pixels = frames.float().permute(0, 2, 3, 1)
    nearest = ((pixels[..., None, :] - _COLOURS_BGR)**2).sum(-1).argmin(-1)
    return F.one_hot(nearest, len(_COLOURS_BGR)).permute(0, 3, 1, 2).float()


@pytest.fixture(scope='module')
def davis_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('davis'))
    return root, make_davis_demo(root)


def test_perfect_feature_reproduces_moving_masks(davis_root, tmp_path):
    root, masks = davis_root
    sequences = load_davis_split(root, 'val')
    assert [s.name for s in sequences] == list(masks)
    scores = DAVISScores()
    out_dir = str(tmp_path / 'pred')
    for seq in sequences:
        # the reference protocol: top-k 10, 20 + 1 context frames, radius 12, T = 0.05
        res = propagate_davis_sequence(colour_onehot_features, seq, out_dir)
        np.testing.assert_array_equal(res['pred'], masks[seq.name])
        assert res['object_ids'] == list(
            range(1,
                  int(masks[seq.name].max()) + 1))
        scores.add(seq.name, res['gt'], res['pred'])
        palette = Image.open(seq.annotations[0]).getpalette()
        for t, stem in enumerate(seq.stems):
            with Image.open(osp.join(out_dir, seq.name, f'{stem}.png')) as img:
                assert img.mode == 'P'
                assert img.size == (32, 24)  # the frame's (W, H)
                assert img.getpalette() == palette
                np.testing.assert_array_equal(np.array(img),
                                              masks[seq.name][t])
    summary = scores.summary()
    assert summary['num_objects'] == 5
    assert summary['J&F-Mean'] == summary['J-Mean'] == summary['F-Mean'] == 1.0


def test_sequence_without_full_annotations_is_not_scored(tmp_path):
    root = str(tmp_path)
    masks = make_davis_demo(root, num_frames=4)
    name = 'two-boxes'
    os.remove(osp.join(root, 'Annotations', '480p', name, '00002.png'))
    seq = load_davis_split(root, 'val', sequences=[name])[0]
    assert not seq.fully_annotated
    res = propagate_davis_sequence(colour_onehot_features, seq, None)
    assert res['gt'] is None
    np.testing.assert_array_equal(res['pred'], masks[name])


def test_missing_layout_pieces_name_the_flag(davis_root, tmp_path):
    root, _ = davis_root
    with pytest.raises(FileNotFoundError, match='--davis-root'):
        load_davis_split(str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError, match=r"--split 'test-dev'.*val"):
        load_davis_split(root, 'test-dev')
    with pytest.raises(ValueError, match='--sequences'):
        load_davis_split(root, 'val', sequences=['bear'])
    broken = str(tmp_path / 'broken')
    make_davis_demo(broken, num_frames=3)
    os.remove(osp.join(broken, 'Annotations', '480p', 'two-boxes',
                       '00000.png'))
    with pytest.raises(FileNotFoundError, match='first frame'):
        load_davis_split(broken)
    os.rename(osp.join(broken, 'JPEGImages', '480p', 'three-boxes'),
              osp.join(broken, 'three-boxes-moved'))
    with pytest.raises(FileNotFoundError, match='no frames'):
        load_davis_split(broken, sequences=['three-boxes'])


def _tool():
    spec = importlib.util.spec_from_file_location(
        '_davis_label_propagation',
        osp.join(ROOT, 'tools', 'analysis', 'davis_label_propagation.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stride8_overrides_for_resnet():
    cfg = dict(type='mmpretrain.ResNet', depth=18)
    assert backbone_stride8_overrides(cfg) == dict(num_stages=3,
                                                   strides=(1, 2, 1),
                                                   dilations=(1, 1, 1),
                                                   out_indices=(2, ),
                                                   frozen_stages=-1)
    assert backbone_stride8_overrides(cfg, layer=4,
                                      dilate=True)['dilations'] == (1, 1, 2, 4)
    assert backbone_stride8_overrides(dict(type='Identity')) == {}


def test_tool_with_random_resnet(davis_root, tmp_path, capsys):
    root, masks = davis_root
    out_dir = str(tmp_path / 'pred')
    out = str(tmp_path / 'davis.json')
    # a narrow ResNet-18 and the data preprocessor, as a pretraining config has them
    # (configs/knn_moco_demo.py takes seconds to resolve its mmpretrain bases)
    config = tmp_path / 'tiny_resnet.py'
    config.write_text(
        "model = dict(backbone=dict(type='mmpretrain.ResNet', depth=18, "
        "stem_channels=16, base_channels=16), data_preprocessor=dict("
        "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], "
        "to_rgb=True))\n")
    result = _tool().main([
        str(config), 'random', '--davis-root', root, '--out-dir', out_dir,
        '--out', out, '--device', 'cpu', '--no-progress'
    ])
    printed = capsys.readouterr().out
    assert result['backbone_overrides']['strides'] == [1, 2, 1]
    for entry in result['sequences']:
        assert entry['feature_size'] == [3, 4]  # stride 8 on 24 x 32 frames
    # the printed summary is the toolkit's score of the PNGs written
    scores = DAVISScores()
    for seq in load_davis_split(root):
        pred = np.stack([
            read_annotation(osp.join(out_dir, seq.name, f'{s}.png'))
            for s in seq.stems
        ])
        assert pred.shape == masks[seq.name].shape
        np.testing.assert_array_equal(pred[0], masks[seq.name][0])
        scores.add(seq.name, masks[seq.name], pred)
    summary = scores.summary()
    for key in ('J&F-Mean', 'J-Mean', 'F-Mean'):
        assert f'{key}: {summary[key]:.4f}' in printed
    assert 'sequence 2/2 three-boxes' in printed
    with open(out) as f:
        saved = json.load(f)
    assert saved['summary']['J&F-Mean'] == pytest.approx(summary['J&F-Mean'])
    assert saved['protocol']['topk'] == 10 and saved['protocol'][
        'context'] == 20


def test_trained_checkpoint_loads_into_the_stride8_backbone(tmp_path):
    """A four-stage checkpoint fills the three kept stages; layer4 is left out."""
    from mmpretrain.registry import MODELS

    from revisit_ssl.evaluation.backbone_loader import load_backbone
    backbone_cfg = dict(type='mmpretrain.ResNet',
                        depth=18,
                        stem_channels=16,
                        base_channels=16)
    torch.manual_seed(0)
    full = MODELS.build(backbone_cfg)
    ckpt = str(tmp_path / 'run.pth')
    torch.save(
        {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in full.state_dict().items()
            },
            'meta': {
                'epoch': 3
            }
        }, ckpt)
    overrides = backbone_stride8_overrides(backbone_cfg)
    backbone, info = load_backbone(dict(model=dict(backbone=backbone_cfg)),
                                   ckpt,
                                   overrides=overrides)
    state = backbone.state_dict()
    assert not any(k.startswith('layer4') for k in state)
    for key, value in state.items():
        torch.testing.assert_close(value, full.state_dict()[key])
    feats = backbone(torch.zeros(1, 3, 40, 56))
    assert feats[-1].shape == (1, 64, 5, 7
                               )  # layer3 (4 x 16 channels), stride 8


def test_demo_data_writes_the_videos_four_times_larger(tmp_path):
    """``make_demo_data.py --formats davis``: the tests' videos at scale 4, in DAVIS's layout."""
    from revisit_ssl.utils.demo_data import make_demo_data
    from revisit_ssl.utils.demo_writers import DAVISWriter
    make_demo_data(str(tmp_path), formats=('davis', ), num_train=2, num_val=1)
    small = make_davis_demo(str(tmp_path / 'small'), num_frames=DAVISWriter.num_frames)
    sequences = load_davis_split(str(tmp_path / 'DAVIS'))
    assert sorted(seq.name for seq in sequences) == sorted(small)
    for seq in sequences:
        masks = np.stack([
            read_annotation(osp.join(tmp_path, 'DAVIS', 'Annotations', '480p', seq.name,
                                     f'{stem}.png')) for stem in seq.stems
        ])
        # every box coordinate and velocity times 4: each small pixel becomes a 4 x 4 block
        expected = np.kron(small[seq.name], np.ones((1, 4, 4), small[seq.name].dtype))
        assert masks.shape == (8, 96, 128)
        np.testing.assert_array_equal(masks, expected)
        assert len(np.unique(masks[0])) - 1 == len(np.unique(small[seq.name][0])) - 1 >= 2
    with pytest.raises(ValueError, match='scale'):
        make_davis_demo(str(tmp_path / 'bad'), scale=0)
