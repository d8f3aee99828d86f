"""StepSeedHook: per-step seeds from (seed, step, rank), so --resume is exact on several ranks."""
import os.path as osp
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_reliability import load, run_ranks

from revisit_ssl.datasets.samplers import sample_seed
from revisit_ssl.engine.hooks import StepSeedHook, step_seed

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# ----------------------------------------------------------------------------- the hook alone


def _runner(seed=7, iteration=0, rank=0, sampler_seed=None):
    loader = SimpleNamespace(sampler=SimpleNamespace(seed=sampler_seed), batch_sampler=None)
    return SimpleNamespace(seed=seed, iter=iteration, rank=rank, train_dataloader=loader)


def _perm_after_hook(**runner_kwargs):
    StepSeedHook().before_train_iter(_runner(**runner_kwargs), batch_idx=0)
    return torch.randperm(64)


def test_the_permutation_is_a_function_of_seed_step_and_rank():
    perm = _perm_after_hook(seed=7, iteration=5, rank=0)
    torch.manual_seed(123)  # another stream in between: the hook replaces it
    torch.randperm(64)
    assert torch.equal(_perm_after_hook(seed=7, iteration=5, rank=0), perm)
    # independently: a generator of its own seeded with step_seed(7, 5, 0)
    own = torch.Generator().manual_seed(step_seed(7, 5, 0))
    assert torch.equal(torch.randperm(64, generator=own), perm)
    others = [
        _perm_after_hook(seed=7, iteration=6, rank=0),
        _perm_after_hook(seed=7, iteration=5, rank=1),
        _perm_after_hook(seed=8, iteration=5, rank=0)
    ]
    for other in others:
        assert not torch.equal(other, perm)


def test_step_seeds_are_not_the_data_seeds():
    # sample_seed hashes (seed, epoch, index): step i of rank r must not replay sample r's
    # draws of epoch i
    seeds = {step_seed(7, i, r) for i in range(50) for r in range(4)}
    assert len(seeds) == 200
    assert not seeds & {sample_seed(7, i, r) for i in range(50) for r in range(4)}


@pytest.mark.parametrize('bad, error', [(-1, ValueError), (1 << 32, ValueError),
                                        (1.0, TypeError), (True, TypeError)])
def test_bad_step_seed_inputs(bad, error):
    with pytest.raises(error, match='step_seed'):
        step_seed(0, bad, 0)


def test_the_hook_leaves_python_and_numpy_alone_and_keeps_no_state():
    random.seed(1)
    np.random.seed(1)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    hook = StepSeedHook()
    hook.before_train_iter(_runner(iteration=3), batch_idx=0)
    assert random.getstate() == python_state
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(after, numpy_state))
    # torch is seeded, not saved and put back: the step draws on from the seed
    first = torch.rand(4)
    torch.manual_seed(step_seed(7, 3, 0))
    assert torch.equal(torch.rand(4), first)
    if torch.cuda.is_available():  # torch.manual_seed seeds every CUDA device too
        hook.before_train_iter(_runner(iteration=3), batch_idx=0)
        on_device = torch.rand(4, device='cuda')
        hook.before_train_iter(_runner(iteration=3), batch_idx=0)
        assert torch.equal(torch.rand(4, device='cuda'), on_device)


def test_after_a_seed_changing_resume_the_sampler_takes_the_checkpoint_seed():
    hook = StepSeedHook()
    runner = _runner(seed=11, sampler_seed=11)
    hook.before_run(runner)  # built with this process's seed 11
    runner.seed = 42  # the resume took the checkpoint's
    hook.before_train(runner)
    assert runner.train_dataloader.sampler.seed == 42

    # a sampler seed of its own (set in the config) is left alone
    hook = StepSeedHook()
    runner = _runner(seed=11, sampler_seed=5)
    hook.before_run(runner)
    runner.seed = 42
    hook.before_train(runner)
    assert runner.train_dataloader.sampler.seed == 5

    # no resume, or one with the same seed: nothing changes
    hook = StepSeedHook()
    runner = _runner(seed=11, sampler_seed=3)
    hook.before_run(runner)
    hook.before_train(runner)
    assert runner.train_dataloader.sampler.seed == 3


# ----------------------------------------------------------------------------- 2 ranks, resume

# The paper's setting on 2 CPU ranks (BN, shuffle-BN), 16 images at 4 per rank: 2 steps per
# epoch, K = 32, a 1-epoch kNN warm-up (the resumed epoch uses the NN loss).
OPTIONS = [
    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'train_dataloader.dataset.indices=16',
    'model.head.queue_len=32', 'model.head.knn_k=4', 'model.knn_warmup_epochs=1',
    'train_cfg.max_epochs=2', 'custom_hooks=[]', 'default_hooks.checkpoint.interval=1'
]
BN_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


def _train(demo_root, work_dir, seed, *extra):
    run_ranks([
        osp.join(ROOT, 'tests', 'helpers', 'train_and_dump.py'), 'configs/knn_moco_demo.py',
        '--work-dir', str(work_dir), '--launcher', 'pytorch', '--cfg-options',
        f'train_dataloader.dataset.data_root={demo_root}', f'randomness.seed={seed}',
        *OPTIONS, *extra
    ], 2)


# (seed of the first run, seed the resuming process starts with). (0, 0): the demo's seed.
# (None, 12345): the recipe's randomness.seed=None (configs/knn_moco_coco.py), where each fresh
# process draws its own seed (runs forked from the warm interpreter all draw the same, so the
# resuming one is given another); the resume puts the checkpoint's seed back
@pytest.mark.parametrize('seed, resume_seed', [(0, 0), (None, 12345)])
def test_two_rank_resume_with_shuffle_bn_is_bit_exact(demo_root, tmp_path, seed, resume_seed):
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    _train(demo_root, straight, seed)
    _train(demo_root, resumed, resume_seed, 'resume=True',
           f'load_from={straight}/epoch_1.pth')

    a, b = load(straight / 'epoch_2.pth'), load(resumed / 'epoch_2.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert a['meta']['seed'] == b['meta']['seed']
    if seed is None:  # the sampler was built with another seed than the checkpoint's
        assert a['meta']['seed'] != resume_seed
    # rank 0's checkpoint, everything: online and momentum weights, queues, pointer and
    # rank 0's BN running statistics
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key in a['state_dict']:
        assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
    for key in ('head.key_queue', 'head.backbone_queue', 'head.queue_ptr',
                'momentum_encoder.module.0.bn1.running_mean'):
        assert key in a['state_dict']
    assert int(a['state_dict']['head.queue_ptr']) == 0  # 4 steps x 8 keys = K: wrapped
    state_a, state_b = a['optimizer']['state'], b['optimizer']['state']
    assert state_a.keys() == state_b.keys() and state_a
    for index in state_a:
        for name, value in state_a[index].items():
            assert torch.equal(value, state_b[index][name]), (index, name)

    # rank 1 too, but for its BN running statistics: these are per rank (mmengine's DDP has
    # broadcast_buffers=False) and the resume loads rank 0's into rank 1, so they genuinely
    # differ from the straight run's (training uses batch statistics, so nothing else does)
    rank1_a, rank1_b = load(straight / 'rank1_state.pth'), load(resumed / 'rank1_state.pth')
    compared = 0
    for key in rank1_a:
        if not key.endswith(BN_STATS):
            assert torch.equal(rank1_a[key], rank1_b[key]), key
            compared += 1
    assert compared > 100
