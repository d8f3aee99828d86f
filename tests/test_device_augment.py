"""DeviceViewAugmentPreprocessor: the views' photometric augmentation batched in the model.

On CPU tensors: per-sample parameters, the key never AutoAugmented, each positive view picking
its branch on its own, the CPU path's distributions of brightness / saturation / hue change,
the CPU path's output format, and one training step of a tiny KNNMoCo.
"""
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmpretrain.models.utils.data_preprocessor import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS

from revisit_ssl.datasets.transforms import build_view_pipeline
from revisit_ssl.models.data_preprocessors import (BatchedColorJitter,
                                                   DeviceViewAugmentPreprocessor,
                                                   apply_batched_ops, build_batched_view_ops)
from revisit_ssl.utils.demo_data import draw_scene

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/coco_knn_moco.py'))
VIEW_TRANSFORMS = BASE.view_transforms
AUTO_AUGMENT_TRANSFORMS = BASE.auto_augment_transforms
NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)


def preprocessor(**kwargs):
    args = dict(view_transforms=VIEW_TRANSFORMS, auto_augment_transforms=AUTO_AUGMENT_TRANSFORMS,
                **NORM)
    args.update(kwargs)
    return DeviceViewAugmentPreprocessor(**args)


def scenes(num, size, seed=0):
    """Photo-like BGR uint8 crops (the demo scenes), ``(num, size, size, 3)``."""
    rng = np.random.default_rng(seed)
    return np.stack([draw_scene(rng, (size, size)).image[..., ::-1] for _ in range(num)])


def to_batch(images):
    """BGR HWC uint8 arrays -> (N, 3, H, W) uint8 tensor, as PackInputs + collate."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def views_of(images, num_small=4, small=12):
    large = to_batch(images)
    smalls = to_batch(np.ascontiguousarray(images[:, :small, :small]))
    return [large, large.clone()] + [smalls.clone() for _ in range(num_small)]


# ------------------------------------------------------------------------------ config


def test_ops_are_built_from_the_configs_lists_with_their_arguments():
    ops = build_batched_view_ops(VIEW_TRANSFORMS)
    jitter, grey, blur, flip = ops
    assert jitter.prob == 0.8
    assert jitter.ranges == ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))
    assert grey.prob == 0.2 and flip.prob == 0.5
    assert blur.sigma == (0.1, 2.0) and blur.prob == 0.5


def test_an_op_without_a_device_version_is_a_clear_error():
    with pytest.raises(ValueError, match='no batched device version.*CPU pipeline'):
        build_batched_view_ops([dict(type='RandomResizedCrop', scale=224)])
    with pytest.raises(ValueError, match='to_rgb=True'):
        preprocessor(to_rgb=False)
    with pytest.raises(ValueError, match='auto_augment_transforms'):
        preprocessor(auto_augment_transforms=None)


def test_inputs_the_preprocessor_cannot_augment_are_clear_errors():
    pre = preprocessor()
    views = views_of(scenes(2, 16))
    with pytest.raises(TypeError, match='list of view batches'):
        pre(dict(inputs=views[0], data_samples=None), True)
    with pytest.raises(ValueError, match='key_index=7'):
        preprocessor(key_index=7).augment_views(views)
    with pytest.raises(ValueError, match=r'view 0 has shape \(2, 1, 16, 16\)'):
        pre.augment_views([views[0][:, :1]] + views[1:])


def test_device_config_builds_and_its_workers_only_decode_crop_resize():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_coco_device_aug.py'))
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert types == ['StrictLoadImageFromFile', 'ConstrainedMultiCrop', 'PackInputs']
    pre = MODELS.build(cfg.model.data_preprocessor)
    assert isinstance(pre, DeviceViewAugmentPreprocessor)
    assert pre.a_plus and pre.a_plus_prob == 0.5 and pre.key_index == 1
    assert [type(op).__name__ for op in pre.auto_augment_ops] == [
        'BatchedRandomFlip', 'BatchedAutoAugment']


# ------------------------------------------------------------------- per-sample draws


def test_identical_images_in_a_batch_get_different_outputs():
    image = scenes(1, 24)
    batch = np.repeat(image, 16, axis=0)
    torch.manual_seed(0)
    out = preprocessor().augment_views(views_of(batch))
    for view in out:
        distinct = {tuple(v.flatten().tolist()) for v in view}
        # 16 copies: ~0.8 jittered with continuous factors, so nearly all differ
        assert len(distinct) >= 12, len(distinct)


def test_jitter_factors_are_independent_between_batch_positions():
    jitter = BatchedColorJitter(prob=0.8, brightness=0.4, contrast=0.4, saturation=0.4,
                                hue=0.1)
    torch.manual_seed(0)
    factors = torch.stack([jitter.sample(8, torch.device('cpu'))['factors']
                           for _ in range(2000)])  # (draws, positions, steps)
    for step in range(4):
        corr = np.corrcoef(factors[:, :, step].T.numpy())  # positions x positions
        off_diagonal = corr[~np.eye(8, dtype=bool)]
        assert np.abs(off_diagonal).max() < 0.1, (step, np.abs(off_diagonal).max())
    # brightness spans its range at every position
    assert factors[..., 0].min() < 0.62 and factors[..., 0].max() > 1.38


def test_draws_are_reproducible_under_the_seed():
    views = views_of(scenes(4, 24))
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(preprocessor().augment_views([v.clone() for v in views]))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------- branches


def test_the_key_is_never_auto_augmented_and_branches_are_applied_as_reported():
    # standard branch = identity, AutoAugment branch = certain flip: each output shows its branch
    pre = preprocessor(view_transforms=[], key_transforms=[],
                       auto_augment_transforms=[dict(type='FastRandomFlip', prob=1.0)])
    images = scenes(32, 16)
    views = views_of(images)
    torch.manual_seed(0)
    for _ in range(20):
        out = pre.augment_views(views)
        assert not pre.last_auto_augmented[1].any()
        assert torch.equal(out[1], views[1].float())
        for index in (0, 2, 3, 4, 5):
            auto = pre.last_auto_augmented[index]
            expected = torch.where(auto.view(-1, 1, 1, 1), views[index].flip(-1),
                                   views[index]).float()
            assert torch.equal(out[index], expected)
            assert 0 < auto.sum() < 32


def test_each_positive_view_chooses_its_branch_on_its_own():
    pre = preprocessor(a_plus_prob=0.3, view_transforms=[], key_transforms=[],
                       auto_augment_transforms=[dict(type='FastRandomFlip', prob=0.0)])
    views = views_of(scenes(32, 8), small=8)
    torch.manual_seed(0)
    masks = []
    for _ in range(200):
        pre.augment_views(views)
        masks.append(torch.stack(pre.last_auto_augmented, dim=1))  # (32, 6)
    masks = torch.cat(masks).float().numpy()  # (6400, views)
    assert masks[:, 1].sum() == 0
    positives = masks[:, [0, 2, 3, 4, 5]]
    assert np.allclose(positives.mean(axis=0), 0.3, atol=0.03), positives.mean(axis=0)
    corr = np.corrcoef(positives.T)
    assert np.abs(corr[~np.eye(5, dtype=bool)]).max() < 0.06, corr


# ------------------------------------------------------- distributions vs the CPU path

def _grey(rgb):
    return 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]


def _hue_saturation(rgb):
    maxc, minc = rgb.max(dim=1).values, rgb.min(dim=1).values
    delta = maxc - minc
    saturation = torch.where(maxc > 0, delta / maxc.clamp(min=1e-6), torch.zeros_like(maxc))
    r, g, b = rgb.unbind(1)
    safe = delta.clamp(min=1e-6)
    hue = torch.where(maxc == r, ((g - b) / safe) % 6,
                      torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    return hue, saturation


def change_statistics(before, after):
    """Per view: change of mean grey level, of mean HSV saturation, and the hue shift.

    ``before`` / ``after``: float RGB ``(N, 3, H, W)`` in [0, 1]. Brightness change = mean grey
    level (ITU-R 601) after minus before; saturation change = mean HSV saturation after minus
    before; hue change = the mean over pixels of the hue difference wrapped to [-0.5, 0.5)
    turns, weighted by the product of the saturations before and after (0 for grey views).
    """
    hue0, sat0 = _hue_saturation(before)
    hue1, sat1 = _hue_saturation(after)
    weight = sat0 * sat1
    shift = (hue1 - hue0 + 0.5) % 1.0 - 0.5
    hue_change = (weight * shift).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp(min=1e-6)
    return dict(brightness=(_grey(after) - _grey(before)).mean(dim=(1, 2)),
                saturation=(sat1 - sat0).mean(dim=(1, 2)),
                hue=hue_change)


def test_brightness_saturation_hue_changes_match_the_cpu_path():
    """20,000 standard-branch views of 8 photo-like crops (2,500 each) on both paths.

    For each statistic of :func:`change_statistics` the two paths' means differ by at most
    3% of the CPU path's standard deviation, and their standard deviations by at most 3%.
    (Statistical error at 20,000 draws: ~1% for both.)
    """
    images = scenes(8, 24, seed=1)
    repeats = 2500
    cpu_pipeline = build_view_pipeline(VIEW_TRANSFORMS)
    np.random.seed(0)
    cpu_out = np.stack([cpu_pipeline(dict(img=image.copy()))['img']
                        for image in images for _ in range(repeats)])
    bgr = to_batch(np.repeat(images, repeats, axis=0))
    cpu_rgb = to_batch(cpu_out)[:, [2, 1, 0]].float() / 255.
    before = bgr[:, [2, 1, 0]].float() / 255.
    ops = build_batched_view_ops(VIEW_TRANSFORMS)
    torch.manual_seed(0)
    device_rgb = torch.cat([apply_batched_ops(ops, chunk.clone()) for chunk in
                            (before * 255.).split(2000)]) / 255.
    cpu, dev = change_statistics(before, cpu_rgb), change_statistics(before, device_rgb)
    for name in ('brightness', 'saturation', 'hue'):
        cpu_mean, cpu_std = cpu[name].mean().item(), cpu[name].std().item()
        dev_mean, dev_std = dev[name].mean().item(), dev[name].std().item()
        assert cpu_std > 0
        assert abs(dev_mean - cpu_mean) <= 0.03 * cpu_std, (name, dev_mean, cpu_mean, cpu_std)
        assert abs(dev_std / cpu_std - 1) <= 0.03, (name, dev_std, cpu_std)


# --------------------------------------------------------------- outputs and training


def test_outputs_have_the_cpu_paths_format():
    views = views_of(scenes(4, 24))
    reference = SelfSupDataPreprocessor(**NORM)(dict(inputs=views, data_samples=None), True)
    # every probability 0: the same tensors as the CPU path's preprocessor, exactly
    still = [dict(type='RandomApply', transforms=[dict(type='FastColorJitter', brightness=0.4)],
                  prob=0.), dict(type='FastRandomGrayscale', prob=0.),
             dict(type='FastGaussianBlur', prob=0.), dict(type='FastRandomFlip', prob=0.)]
    pre = preprocessor(view_transforms=still, a_plus=False)
    out = pre(dict(inputs=views, data_samples=None), True)
    for a, b in zip(out['inputs'], reference['inputs']):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
    # the config's transforms: same shapes, dtype and normalisation range
    torch.manual_seed(0)
    out = preprocessor()(dict(inputs=views, data_samples=None), True)
    for a, b in zip(out['inputs'], reference['inputs']):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert a.min() >= min(-m / s for m, s in zip(NORM['mean'], NORM['std'])) - 1e-5
        assert a.max() <= max((255 - m) / s for m, s in zip(NORM['mean'], NORM['std'])) + 1e-5
    # outside training (kNN monitor, feature extraction) nothing is augmented
    single = views[0]
    plain = SelfSupDataPreprocessor(**NORM)(dict(inputs=single, data_samples=None), False)
    assert torch.equal(preprocessor()(dict(inputs=single, data_samples=None))['inputs'],
                       plain['inputs'])


def test_a_tiny_knn_moco_trains_one_step_with_device_augmentation():
    from test_knn_moco import tiny_cfg
    MessageHub.get_current_instance().update_info('epoch', 0)
    cfg = tiny_cfg(num_small_crops=4, data_preprocessor=dict(
        type='DeviceViewAugmentPreprocessor', view_transforms=VIEW_TRANSFORMS,
        auto_augment_transforms=AUTO_AUGMENT_TRANSFORMS, **NORM))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    views = views_of(scenes(4, 32), small=16)
    log = model.train_step(dict(inputs=views, data_samples=None), optim)
    assert torch.isfinite(log['loss'])
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.backbone.parameters()))
    assert changed > 0
    assert len(model.data_preprocessor.last_auto_augmented) == 6


def test_benchmark_device_mode_prints_rates_ratio_and_ms_per_batch():
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'benchmarks', 'pipeline_throughput.py'), '--mode',
         'device', '--num-images', '3', '--rounds', '2', '--device-batch', '4',
         '--device-rounds', '1'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    rates = dict(re.findall(r'^(decode\+crop \(device\)|release-style)\s+([0-9.]+)', out,
                            flags=re.M))
    assert set(rates) == {'decode+crop (device)', 'release-style'}, out
    (ratio, ) = re.findall(r'^ratio device-workers/release = ([0-9.]+) \(median', out,
                           flags=re.M)
    assert float(ratio) > 0 and 'target >= 3' in out
    (ms, ) = re.findall(r'^device-side augmentation on cpu: ([0-9.]+) ms per batch of 4',
                        out, flags=re.M)
    assert float(ms) > 0
