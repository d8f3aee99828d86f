"""Exact resume and 2-rank data parallel correctness on CPU processes (gloo)."""
import os
import os.path as osp
import sys

import pytest
import torch

# tests/helpers, on sys.path through tests/conftest.py
from demo_runs import free_port, port_was_taken
from warm_python import run_warm, run_warm_group

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY = sys.executable


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def run_ranks(args, nproc):
    """``torchrun --nproc_per_node=nproc SCRIPT ARGS``: the ranks get torchrun's variables,
    each forked from the warm interpreter (tests/helpers/warm_python.py); the launchers
    themselves (tools/dist_train.sh, torchrun) are tested by tests/test_multinode.py."""
    for _ in range(3):  # a fresh port if another process took this one meanwhile
        port = str(free_port())
        envs = [dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1',
                     RANK=str(rank), LOCAL_RANK=str(rank), GROUP_RANK='0',
                     WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
                     MASTER_ADDR='127.0.0.1', MASTER_PORT=port) for rank in range(nproc)]
        results = run_warm_group([([PY, *args], ROOT, env) for env in envs])
        if all(r.returncode == 0 for r in results) or not port_was_taken(
                ''.join(r.stdout + r.stderr for r in results)):
            break
    for result in results:
        assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-4000:])


# ----------------------------------------------------------------------------- exact resume


def test_resume_is_bit_exact(demo_straight_run, demo_resumed_run):
    """2 epochs in one go == 1 epoch, stop, --resume, 1 more epoch (weights, queues, optimizer).

    With the recipe's loader: persistent workers (2 here). mmengine seeds each worker once
    from (seed, rank, worker id), so a persistent worker's random stream runs on across
    epochs and a resumed run would restart it; PerSampleSeedSampler (the recipe's sampler)
    draws every sample's augmentations from (seed, epoch, index) instead, whichever worker
    loads it and whatever it loaded before. The runs are tests/conftest.py's shared demo
    runs (16 images, batch 8, K = 64, a 1-epoch kNN warm-up: the resumed epoch uses the NN
    loss).
    """
    assert 'resumed epoch: 1, iter: 2' in demo_resumed_run.stdout
    a = load(demo_straight_run.path('epoch_2.pth'))
    b = load(demo_resumed_run.path('epoch_2.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key in a['state_dict']:
        assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
    for key in ('head.key_queue', 'head.backbone_queue', 'head.queue_ptr',
                'momentum_encoder.module.0.conv1.weight',
                'backbone.conv1.weight'):
        assert key in a['state_dict']
    momentum_a = a['optimizer']['state']
    momentum_b = b['optimizer']['state']
    assert momentum_a.keys() == momentum_b.keys()
    for k in momentum_a:
        assert torch.equal(momentum_a[k]['momentum_buffer'],
                           momentum_b[k]['momentum_buffer'])


# ----------------------------------------------------------------------------- 2 ranks

# GroupNorm makes one process with batch 16 and two processes with batch 8 compute the same
# thing (BN statistics would differ per rank, and shuffle-BN permutes the key batch). The
# recipe's random views (CC crops, A+) included: PerSampleSeedSampler draws a sample's views
# from (seed, epoch, index), so they do not depend on the rank or batch that loads it.
EXACT_CFG = """
_base_ = ['{root}/configs/knn_moco_demo.py']
model = dict(
    backbone=dict(norm_cfg=dict(type='GN', num_groups=8)),
    head=dict(queue_len=64, knn_k=4))
train_dataloader = dict(
    batch_size={batch},
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root='{data}', indices=16))
train_cfg = dict(max_epochs=2)
custom_hooks = []
default_hooks = dict(checkpoint=dict(interval=100))
"""


def dump_run(tmp_path, demo_root, name, nproc, batch):
    cfg = tmp_path / f'{name}.py'
    cfg.write_text(EXACT_CFG.format(root=ROOT, batch=batch, data=demo_root))
    work_dir = tmp_path / name
    script = osp.join(ROOT, 'tests', 'helpers', 'train_and_dump.py')
    if nproc == 1:  # forked from the warm interpreter (tests/helpers/warm_python.py)
        result = run_warm([PY, script, str(cfg), '--work-dir', str(work_dir)], cwd=ROOT,
                          env=dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1'))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    else:
        run_ranks([script, str(cfg), '--work-dir', str(work_dir), '--launcher', 'pytorch'],
                  nproc)
    return [load(work_dir / f'rank{r}_state.pth') for r in range(nproc)]


def test_two_ranks_match_one_process_with_the_same_global_batch(
        demo_root, tmp_path):
    rank0, rank1 = dump_run(tmp_path, demo_root, 'ddp', nproc=2, batch=8)
    (single, ) = dump_run(tmp_path, demo_root, 'single', nproc=1, batch=16)

    # both ranks end identical: weights (DDP) and queues (same gathered keys)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    # 2 steps of global batch 16 were enqueued
    assert int(rank0['head.queue_ptr']) == int(single['head.queue_ptr']) == 32

    # DefaultSampler deals the shuffled global batch out interleaved (rank r gets positions
    # r, r+2, ...), and the gather puts rank 0's 8 keys before rank 1's. So the queue holds
    # the keys of both ranks at the right columns iff, per step, DDP columns 0-7 are the
    # single run's even columns and 8-15 its odd ones.
    for queue in ('head.key_queue', 'head.backbone_queue'):
        for step in range(2):
            block = slice(16 * step, 16 * step + 16)
            ddp, one = rank0[queue][:, block], single[queue][:, block]
            assert torch.allclose(ddp[:, :8], one[:, 0::2], atol=1e-5), queue
            assert torch.allclose(ddp[:, 8:], one[:, 1::2], atol=1e-5), queue
        # the columns not yet written are the same random init
        assert torch.equal(rank0[queue][:, 32:], single[queue][:, 32:])

    # online and momentum weights agree with the single process up to float reassociation
    for key, value in single.items():
        if value.is_floating_point() and 'queue' not in key:
            assert torch.allclose(rank0[key], value, atol=1e-5,
                                  rtol=1e-4), key


@pytest.mark.parametrize('nproc', [2])
def test_shuffle_bn_ranks_stay_identical(demo_root, tmp_path, nproc):
    """The paper's setting (BN, shuffle-BN across ranks): ranks agree on weights and queues."""
    result_dir = tmp_path / 'bn'
    run_ranks([
        osp.join(ROOT, 'tests', 'helpers', 'train_and_dump.py'),
        'configs/knn_moco_demo.py', '--work-dir',
        str(result_dir), '--launcher', 'pytorch', '--cfg-options',
        f'train_dataloader.dataset.data_root={demo_root}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_dataloader.dataset.indices=16', 'model.head.queue_len=32',
        'model.head.knn_k=4', 'train_cfg.max_epochs=2', 'custom_hooks=[]',
        'default_hooks.checkpoint.interval=100'
    ], nproc)
    states = [load(result_dir / f'rank{r}_state.pth') for r in range(nproc)]
    bn_stats = ('running_mean', 'running_var', 'num_batches_tracked')
    compared = 0
    for key in states[0]:
        if key.endswith(bn_stats):
            # BN running statistics are per rank: mmengine wraps DDP with
            # broadcast_buffers=False (training uses batch statistics; the checkpoint holds
            # rank 0's). Everything else must agree bit for bit.
            continue
        assert torch.equal(states[0][key], states[1][key]), key
        compared += 1
    assert compared > 100
    # 4 steps x global batch 8 = 32 = K: the pointer wrapped to 0, every column written
    assert int(states[0]['head.queue_ptr']) == 0
    norms = states[0]['head.key_queue'].norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
