"""PerSampleSeedSampler: each sample's augmentations are a function of (seed, epoch, index)."""
import copy
import os.path as osp
import pickle
import random

import mmengine.dataset.sampler as mmengine_sampler
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from revisit_ssl.datasets.samplers import (PerSampleSeedSampler, SeededFetch, SeededIndex,
                                           sample_seed, seeded_global_rngs)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_LOADER = Config.fromfile(osp.join(ROOT, 'configs', 'knn_moco_demo.py')).train_dataloader


def build_loader(demo_root, num_workers=0, batch_size=8, shuffle=True, dataset=None,
                 sampler='PerSampleSeedSampler'):
    """The demo recipe's train loader (16 images) through mmengine's Runner.build_dataloader."""
    cfg = copy.deepcopy(DEMO_LOADER.to_dict())
    cfg.update(num_workers=num_workers, batch_size=batch_size,
               persistent_workers=num_workers > 0,
               sampler=dict(type=sampler, shuffle=shuffle))
    cfg['dataset'].update(data_root=demo_root, indices=16)
    if dataset is not None:  # a subset wrapper around the recipe's dataset (all 48 images)
        inner = dict(cfg['dataset'], with_label=True)
        del inner['indices']
        cfg['dataset'] = dict(dataset, dataset=inner)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Runner.build_dataloader(cfg, seed=0)


def epoch_views(loader, epoch):
    """All views of one epoch: one (N, 3, H, W) tensor per view, batches concatenated."""
    loader.sampler.set_epoch(epoch)
    batches = [batch['inputs'] for batch in loader]
    return [torch.cat([views[v] for views in batches]) for v in range(len(batches[0]))]


def assert_same_views(a, b):
    assert len(a) == len(b) == 6  # 2 large + 4 small crops
    for x, y in zip(a, b):
        assert torch.equal(x, y)


# ----------------------------------------------------------------------------- seed function


def test_sample_seed_is_a_fixed_hash_of_seed_epoch_and_index():
    # Values of numpy's SeedSequence over the uint32 words (seed, epoch, index): the same in
    # every process and on every platform, so a rerun or a resume redraws the same views.
    assert sample_seed(0, 0, 0) == 15793235383387715774
    assert sample_seed(0, 0, 1) == 8649202198168436674
    assert sample_seed(0, 1, 0) == 5836529245451711556
    assert sample_seed(1, 0, 0) == 7434755675892716031
    assert sample_seed(2**32 - 1, 7, 118286) == 1371790726637529357
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(4) for i in range(200)}
    assert len(seeds) == 3 * 4 * 200  # no two (seed, epoch, index) share draws
    assert all(0 <= s < 2**64 for s in seeds)


@pytest.mark.parametrize('args, error', [((-1, 0, 0), ValueError), ((0, 2**32, 0), ValueError),
                                         ((0, 0, -3), ValueError), ((0, 1.0, 0), TypeError),
                                         ((True, 0, 0), TypeError)])
def test_sample_seed_rejects_what_it_cannot_hash_uniquely(args, error):
    with pytest.raises(error, match='sample_seed'):
        sample_seed(*args)


def test_seeded_global_rngs_seeds_all_three_and_restores_them():

    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected_after = draw()  # the outer stream as if the block had not run
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    with seeded_global_rngs(sample_seed(0, 1, 7)):
        inside = draw()
    assert draw() == expected_after
    with seeded_global_rngs(sample_seed(0, 1, 7)):
        assert draw() == inside
    with seeded_global_rngs(sample_seed(0, 1, 8)):
        assert all(a != b for a, b in zip(draw(), inside))
    with seeded_global_rngs(sample_seed(0, 1, 7), restore=False):
        pass
    assert draw() == inside  # not restored: the block's stream runs on


def test_seeded_index_survives_pickling_and_arithmetic_drops_it():
    index = SeededIndex(11, seed=3, epoch=2)
    copy_ = pickle.loads(pickle.dumps(index))  # the DataLoader's index queue pickles it
    assert isinstance(copy_, SeededIndex) and copy_ == 11
    assert (copy_.seed, copy_.epoch) == (3, 2)
    assert copy_.sample_seed == sample_seed(3, 2, 11)
    assert type(index + 1) is int and [10, 20, 30, 40][SeededIndex(2, 0, 0)] == 30


# ----------------------------------------------------------------------------- the sampler


def test_num_workers_0_1_2_give_identical_batches(demo_root):
    """Same tensors for 2 epochs, with (persistent) worker processes or without."""
    runs = {}
    for num_workers in (0, 1, 2):
        loader = build_loader(demo_root, num_workers=num_workers)
        assert isinstance(loader.sampler, PerSampleSeedSampler)
        runs[num_workers] = [epoch_views(loader, epoch) for epoch in range(2)]
    for num_workers in (1, 2):
        for epoch in range(2):
            assert_same_views(runs[0][epoch], runs[num_workers][epoch])


def test_epochs_draw_differently_for_the_same_index(demo_root):
    loader = build_loader(demo_root, shuffle=False)  # position i is sample i in every epoch
    first, second, again = (epoch_views(loader, epoch) for epoch in (0, 1, 0))
    assert_same_views(first, again)  # back at epoch 0: the same draws
    for view in range(6):
        for sample in range(16):
            assert not torch.equal(first[view][sample], second[view][sample]), (view, sample)


@pytest.mark.parametrize('wrapper', [
    dict(type='UniformSubsetDataset', num_samples=12, seed=1),
    dict(type='ParetoLongTailDataset', max_count=4, min_count=1, seed=1),
])
def test_two_ranks_draw_what_one_process_draws_for_the_same_indices(
        demo_root, monkeypatch, wrapper):
    """Through our subset wrappers, a sample's views do not depend on which rank loads it."""
    single = epoch_views(build_loader(demo_root, batch_size=4, dataset=wrapper), 1)
    num = len(single[0])
    assert num >= 8
    for rank in range(2):
        monkeypatch.setattr(mmengine_sampler, 'get_dist_info', lambda r=rank: (r, 2))
        loader = build_loader(demo_root, batch_size=2, dataset=wrapper)
        assert (loader.sampler.rank, loader.sampler.world_size) == (rank, 2)
        # DefaultSampler deals the global order out interleaved: rank r gets r, r + 2, ...
        assert_same_views(epoch_views(loader, 1), [view[rank::2] for view in single])


def test_a_plain_index_and_a_bad_seed_are_clear_errors(demo_root):
    dataset = build_loader(demo_root).dataset
    assert isinstance(dataset.__getitems__, SeededFetch)
    with pytest.raises(TypeError, match="DefaultSampler"):
        dataset.__getitems__([0, 1])
    with pytest.raises(ValueError, match=r'\[0, 2\*\*32\)'):
        PerSampleSeedSampler(dataset, seed=-1)

