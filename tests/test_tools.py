"""tools/train.py, --resume with safe loading, dist_train.sh on CPU, data-root errors.

The training runs are tests/conftest.py's shared demo runs (1 epoch, stop, --resume to 2;
dist_train.sh with 2 processes), also read by tests/test_reliability.py and
tests/test_multinode.py.
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY = sys.executable


def run_tool(args, cwd=ROOT, env=None):
    full_env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1',
                    **(env or {}))
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=600)


def load(path):
    # torch's default, safe loading: our checkpoint types must be allow-listed
    return torch.load(path, map_location='cpu', weights_only=True)


def test_train_then_resume_continues_iteration_counter(demo_stopped_run,
                                                      demo_resumed_run):
    # tests/conftest.py: 1 epoch, the run stops; then --resume to 2 epochs
    assert 'Checkpoint: ' in demo_stopped_run.stdout
    ckpt1 = load(demo_stopped_run.path('epoch_1.pth'))
    assert ckpt1['meta']['iter'] == 2 and ckpt1['meta']['epoch'] == 1
    assert int(ckpt1['state_dict']['head.queue_ptr']) == 16

    log = demo_resumed_run.output
    assert 'resumed epoch: 1, iter: 2' in log
    ckpt2 = load(demo_resumed_run.path('epoch_2.pth'))
    assert ckpt2['meta']['iter'] == 4 and ckpt2['meta']['epoch'] == 2
    # the queue kept the first run's keys and went on from its pointer
    assert int(ckpt2['state_dict']['head.queue_ptr']) == 32
    assert torch.equal(ckpt2['state_dict']['head.key_queue'][:, :16],
                       ckpt1['state_dict']['head.key_queue'][:, :16])
    # epoch 2 is past the 1-epoch warm-up: the weighted NN loss is in the log
    assert 'loss_knn:' in log and 'knn_raw:' in log


def test_checkpoint_reloads_into_the_demo_model(demo_stopped_run):
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_demo.py'))
    cfg.merge_from_dict({'model.head.queue_len': 64, 'model.head.knn_k': 4})
    model = MODELS.build(cfg.model)
    load_checkpoint(model, demo_stopped_run.path('epoch_1.pth'), strict=True)
    saved = load(demo_stopped_run.path('epoch_1.pth'))['state_dict']
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_dist_train_two_cpu_processes(demo_dist_run):
    # tests/conftest.py: `bash tools/dist_train.sh configs/knn_moco_demo.py 2`, 2 epochs,
    # also the reference of tests/test_multinode.py
    ckpt = load(demo_dist_run.path('epoch_1.pth'))
    # 16 images over 2 ranks at 8 per rank: 1 iteration of global batch 16
    assert ckpt['meta']['iter'] == 1
    assert int(ckpt['state_dict']['head.queue_ptr']) == 16


def test_missing_data_root_is_one_clear_message(tmp_path):
    result = run_tool([
        PY, 'tools/train.py', 'configs/knn_moco_coco.py', '--work-dir',
        str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/no_coco'
    ])
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    for part in ('no_coco', 'train2017/', 'Expected layout',
                 '--cfg-options train_dataloader.dataset.data_root='):
        assert part in result.stderr, result.stderr


def test_demo_data_is_deterministic_and_scene_centric(tmp_path):
    from revisit_ssl.utils.demo_data import (DEMO_CLASSES, draw_scene,
                                             make_demo_data)
    a, b, c = (str(tmp_path / n) for n in 'abc')
    make_demo_data(a, num_train=12, num_val=6, seed=3)
    make_demo_data(b, num_train=12, num_val=6, seed=3)
    make_demo_data(c, num_train=12, num_val=6, seed=4)

    def files(root):
        return sorted(
            osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
            for f in fs)

    assert files(a) == files(b) and len(files(a)) == 18
    for rel in files(a):
        with open(osp.join(a, rel), 'rb') as fa, open(osp.join(b, rel),
                                                     'rb') as fb:
            assert fa.read() == fb.read()
    differs = [
        open(osp.join(a, r), 'rb').read() != open(osp.join(c, r), 'rb').read()
        for r in files(a) if osp.exists(osp.join(c, r))
    ]
    assert differs and all(differs)
    # balanced dominant classes in the labelled split
    for split, num in (('train', 12), ('val', 6)):
        counts = [len(os.listdir(osp.join(a, split, cls))) for cls in
                  DEMO_CLASSES]
        assert counts == [num // len(DEMO_CLASSES)] * len(DEMO_CLASSES)
    # scenes hold several objects; the dominant one is the largest; masks do not overlap
    for seed in range(30):
        scene = draw_scene(np.random.default_rng(seed), (120, 90), label=2)
        assert scene.image.shape == (90, 120, 3)
        assert scene.dominant_label == 2
        assert len(scene.objects) >= 1
        total = sum(o.mask.astype(int) for o in scene.objects)
        assert total.max() <= 1
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.bbox
            assert 0 <= x1 < x2 <= 120 and 0 <= y1 < y2 <= 90
