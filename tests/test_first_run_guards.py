"""Mistakes of a first run that used to exit 0 and be wrong: each now stops with the fix.

Also crash safety: checkpoints are written atomically, a run killed during a checkpoint save
resumes from the last complete one, and a damaged ``last_checkpoint`` is repaired.
"""
import importlib.util
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import demo_runs  # tests/helpers, on sys.path through tests/conftest.py
from warm_python import run_warm

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY = sys.executable
HELPERS = osp.join(ROOT, 'tests', 'helpers')


def options(data_root, **extra):
    """A 16-image, 2-iterations-per-epoch, 2-epoch demo run: tests/conftest.py's shared runs
    (the recipe's 2 persistent workers, K = 64, k = 4, 1 warm-up epoch, a checkpoint every
    epoch), so that a resumed run here trains what ``demo_straight_run`` trained."""
    return demo_runs.demo_options(data_root, **{'train_cfg.max_epochs': 2, **extra})


def train(work_dir, opts, *extra, check=True, env=None, wait=True, fresh=False,
          config='configs/knn_moco_demo.py'):
    """tools/train.py forked from the warm interpreter (tests/helpers/warm_python.py);
    ``fresh``: a new interpreter (the whole output of a start-up error); ``wait=False``: a
    running subprocess."""
    args = [
        PY, 'tools/train.py', str(config), '--work-dir',
        str(work_dir), *extra, '--cfg-options', *opts
    ]
    full_env = demo_runs.train_env(**(env or {}))
    if not wait:
        return subprocess.Popen(args, cwd=ROOT, env=full_env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    if fresh:
        result = subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True,
                                text=True, timeout=600)
    else:
        result = run_warm(args, cwd=ROOT, env=full_env)
    out = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, out[-4000:]
    return result.returncode, out


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same_weights(a, b):
    a, b = load(a)['state_dict'], load(b)['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope='module')
def pretrained_run(demo_straight_run):
    """One straight 2-epoch run (tests/conftest.py): ``epoch_1.pth``, ``epoch_2.pth``, output."""
    return Path(demo_straight_run.work_dir), demo_straight_run.output


@pytest.fixture(scope='module')
def pretrained(pretrained_run):
    return pretrained_run[0]


def build_model(**overrides):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_demo.py'))
    cfg.model.head.queue_len = 64
    cfg.model.head.knn_k = 4
    cfg.merge_from_dict(overrides)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model)


# ----------------------------------------------------------------- 1. fewer images than a batch


def test_fewer_images_than_one_global_batch_stops(demo_root, tmp_path):
    code, out = train(tmp_path, options(demo_root, **{
        'train_dataloader.dataset.indices': 5}), check=False)
    assert code != 0
    assert 'The training set has 5 images' in out
    assert '8 per process x 1 process(es) = 8' in out
    # the largest batch <= 5 whose global batch divides K = 64
    assert 'train_dataloader.batch_size=4 (a divisor of model.head.queue_len=64)' in out
    assert not os.path.exists(tmp_path / 'epoch_1.pth')  # nothing saved


def test_a_wrapper_that_leaves_fewer_images_than_a_batch_stops(
        demo_root, tmp_path):
    from mmengine.runner import Runner

    from revisit_ssl.engine.hooks import EmptyEpochError
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_demo.py'))
    inner = cfg.train_dataloader.dataset
    inner.data_root = demo_root
    inner.with_label = True
    # 6 classes x 1 image = 6 images < batch 8
    cfg.train_dataloader.dataset = dict(
        type='UniformSubsetDataset', dataset=inner, num_samples=6)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.batch_size = 8
    cfg.model.head.queue_len = 64
    cfg.custom_hooks = []
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(EmptyEpochError, match=r'has 6 images \(UniformSubset'):
        runner.train()


# ----------------------------------------------------------------- 2. load_from that fills nothing


def convert_backbone(src, dst):
    spec = importlib.util.spec_from_file_location(
        'extract_backbone',
        osp.join(ROOT, 'tools/model_converters/extract_backbone.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(src), str(dst)]) == 0


def test_backbone_only_checkpoint_fills_both_backbones(pretrained, tmp_path):
    from mmengine.runner import load_checkpoint
    converted = tmp_path / 'backbone.pth'
    convert_backbone(pretrained / 'epoch_2.pth', converted)
    # the converter writes backbone.<key> (what Pretrained(prefix='backbone.') reads)
    written = load(converted)['state_dict']
    assert written and all(k.startswith('backbone.') for k in written)
    backbone = {k[len('backbone.'):]: v for k, v in written.items()}

    model = build_model()
    before_neck = {k: v.clone() for k, v in model.neck.state_dict().items()}
    load_checkpoint(model, str(converted), strict=False)  # as Runner's load_from does
    for part in (model.backbone, model.momentum_encoder.module[0]):
        state = part.state_dict()
        for key, value in backbone.items():
            assert torch.equal(state[key], value), key
    # the neck is not in a backbone-only checkpoint: it keeps its initialisation
    for key, value in model.neck.state_dict().items():
        assert torch.equal(value, before_neck[key]), key


def test_load_from_backbone_only_checkpoint_trains_and_logs_the_count(
        demo_root, pretrained, tmp_path):
    converted = tmp_path / 'backbone.pth'
    convert_backbone(pretrained / 'epoch_2.pth', converted)
    n = len([k for k in load(converted)['state_dict']
             if not k.endswith('num_batches_tracked')])
    # another queue length than the pretraining run: only the backbone carries over
    _, out = train(tmp_path / 'run', options(demo_root, **{
        'train_cfg.max_epochs': 1, 'model.head.queue_len': 32,
        'load_from': str(converted)}))
    assert (f'load_from={converted} filled {n}/{n} tensors of the online '
            f'backbone and {n}/{n} of the momentum backbone') in out
    assert 'a backbone-only checkpoint' in out


def test_load_from_that_fills_nothing_stops(tmp_path):
    from mmengine.runner import load_checkpoint
    foreign = tmp_path / 'foreign.pth'
    model = build_model()
    torch.save({'state_dict': {f'encoder_q.{k}': v for k, v in
                               model.backbone.state_dict().items()}}, foreign)
    model.checkpoint_origin = f'load_from={foreign}'
    with pytest.raises(ValueError) as error:
        load_checkpoint(model, str(foreign), strict=False)
    message = str(error.value)
    total = len([k for k in model.backbone.state_dict()
                 if not k.endswith('num_batches_tracked')])
    assert f'load_from={foreign} filled 0/{total} tensors' in message
    assert 'encoder_q.conv1.weight' in message
    assert 'extract_backbone.py' in message
    assert 'model.allow_partial_load=True' in message


def test_load_with_another_width_stops_unless_partial_allowed(tmp_path):
    from mmengine.runner import load_checkpoint
    narrow = tmp_path / 'narrow.pth'
    # without the head: its queues would stop the load on their own shape check
    torch.save({'state_dict': {k: v for k, v in build_model().state_dict().items()
                               if not k.startswith('head.')}}, narrow)
    wide = dict(model=dict(
        backbone=dict(stem_channels=64, base_channels=64),
        neck=dict(in_channels=512), head=dict(backbone_dim=512)))
    with pytest.raises(ValueError, match=r'have another shape, e\.g\. '
                       r'backbone\.conv1\.weight: checkpoint \(32, 3, 7, 7\) '
                       r'vs model \(64, 3, 7, 7\)'):
        load_checkpoint(build_model(**wide), str(narrow), strict=False)
    # opting in: loads what fits, warns, keeps the rest at its initialisation
    partial = build_model(**wide, **{'model.allow_partial_load': True})
    before = partial.backbone.conv1.weight.clone()
    load_checkpoint(partial, str(narrow), strict=False)
    assert torch.equal(partial.backbone.conv1.weight, before)


def test_full_checkpoint_loads_silently(pretrained):
    from mmengine.runner import load_checkpoint
    model = build_model()
    load_checkpoint(model, str(pretrained / 'epoch_2.pth'), strict=False)
    saved = load(pretrained / 'epoch_2.pth')['state_dict']
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_queue_shape_error_names_what_the_user_used(demo_root, pretrained,
                                                    tmp_path):
    code, out = train(tmp_path / 'a', options(demo_root, **{
        'model.head.queue_len': 32,
        'load_from': str(pretrained / 'epoch_1.pth')}), check=False)
    assert code != 0
    assert f'load_from={pretrained / "epoch_1.pth"}: its head.key_queue' in out
    assert 'load_from restores the queues too' in out
    assert 'extract_backbone.py' in out
    code, out = train(tmp_path / 'b', options(demo_root, **{
        'model.head.queue_len': 32}), '--resume',
        str(pretrained / 'epoch_1.pth'), check=False)
    assert code != 0
    assert f'--resume {pretrained / "epoch_1.pth"}: its head.key_queue' in out
    assert 'model.head.queue_len=64' in out


# ----------------------------------------------------------------- 3. depth changed alone


def test_backbone_depth_changed_alone_stops_at_build():
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_coco.py'))
    cfg.model.backbone.depth = 18
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        with pytest.raises(ValueError) as error:
            MODELS.build(cfg.model)
    message = str(error.value)
    assert 'ResNet(depth=18' in message and 'gives 512-d features' in message
    assert ('--cfg-options model.neck.in_channels=512 '
            'model.head.backbone_dim=512') in message
    # the fix it names builds
    cfg.merge_from_dict({'model.neck.in_channels': 512,
                         'model.head.backbone_dim': 512})
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        MODELS.build(cfg.model)


# ----------------------------------------------------------------- 4. non-finite loss


def fault_config(tmp_path, body=''):
    """The demo config with tests/helpers/fault_injection.py imported (custom_imports are
    read when the config file loads, so they cannot come through --cfg-options)."""
    config = tmp_path / 'faulty.py'
    config.write_text(
        f"_base_ = ['{ROOT}/configs/knn_moco_demo.py']\n"
        "custom_imports = dict(imports=['revisit_ssl', 'fault_injection'])\n"
        + body)
    return config


def nan_config(tmp_path, **hook):
    return fault_config(
        tmp_path, f"custom_hooks = [dict(type='NaNInjectionHook', **{hook!r})]\n")



def test_nan_loss_stops_at_its_iteration_and_keeps_the_last_good_checkpoint(
        demo_root, tmp_path):
    opts = [o for o in options(demo_root) if not o.startswith('custom_hooks')]
    code, out = train(tmp_path, opts, check=False,
                      config=nan_config(tmp_path, iteration=3))
    assert code != 0
    assert 'Non-finite loss at iteration 3 (epoch 2, step 1 of the epoch)' in out
    assert 'loss_inst=nan' in out and 'knn_raw=' in out
    assert f'Last good checkpoint: {tmp_path}/epoch_1.pth' in out
    assert not os.path.exists(tmp_path / 'epoch_2.pth')
    assert (tmp_path / 'last_checkpoint').read_text().endswith('epoch_1.pth')


def test_nan_weights_are_never_saved(demo_root, tmp_path):
    # the loss of iteration 2 is finite, then the weights turn NaN before the epoch's save
    opts = [o for o in options(demo_root) if not o.startswith('custom_hooks')]
    code, out = train(tmp_path, opts, check=False,
                      config=nan_config(tmp_path, iteration=2, when='after'))
    assert code != 0
    assert 'Refusing to save a checkpoint' in out
    assert 'backbone.conv1.weight' in out
    assert not os.path.exists(tmp_path / 'epoch_1.pth')
    assert not os.path.exists(tmp_path / 'last_checkpoint')


def test_guard_stops_every_rank_when_one_rank_breaks():
    """The NaN flag is all-reduced: a rank with a finite loss stops with the others."""
    from unittest import mock

    from revisit_ssl.engine.hooks import NonFiniteLossError, TrainingGuardHook
    runner = mock.Mock(iter=4, epoch=0, work_dir='/nonexistent')

    def other_rank_broke(flag):
        flag += 1

    with mock.patch(
            'revisit_ssl.engine.hooks.training_guard_hook.all_reduce',
            other_rank_broke):
        with pytest.raises(NonFiniteLossError, match='on another rank'):
            TrainingGuardHook().after_train_iter(
                runner, 0, outputs=dict(loss=torch.tensor(1.0)))
    # and a finite loss everywhere passes
    TrainingGuardHook().after_train_iter(
        runner, 0, outputs=dict(loss=torch.tensor(1.0)))


# ----------------------------------------------------------------- 6. --amp without CUDA


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only machine')
def test_amp_without_cuda_stops_before_the_config_dump(demo_root, tmp_path):
    code, out = train(tmp_path, options(demo_root), '--amp', check=False, fresh=True)
    assert code != 0
    assert 'ERROR: --amp (AmpOptimWrapper) needs a CUDA GPU' in out
    assert 'Config:' not in out  # stopped before the Runner was built
    assert out.count('\n') <= 3


# ----------------------------------------------------------------- the lr at any batch


def test_run_logs_the_lr_scaled_to_its_batch(pretrained_run):
    # the recipe's 0.3 per 256 images, at batch 8 on one process
    assert ('Learning rate 0.009375 for a global batch of 8 (8 per process x 1 '
            'process(es)); the config\'s lr 0.3 is for a global batch of 256, '
            'scaled linearly by auto_scale_lr') in pretrained_run[1]


@pytest.mark.parametrize('world_size, lr', [(1, 0.15), (2, 0.3)])
def test_recipe_lr_scales_with_the_global_batch(demo_root, tmp_path,
                                                world_size, lr):
    from unittest import mock

    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(ROOT, 'configs/knn_moco_coco.py'))
    cfg.train_dataloader.dataset.data_root = demo_root
    cfg.train_dataloader.dataset.data_prefix = 'train'
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.work_dir = str(tmp_path)
    assert cfg.train_dataloader.batch_size == 128
    runner = Runner.from_cfg(cfg)
    with mock.patch.object(Runner, 'world_size', new=world_size):
        optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        runner.scale_lr(optim_wrapper, runner.auto_scale_lr)
    assert optim_wrapper.get_lr()['lr'] == [pytest.approx(lr)]


# ----------------------------------------------------------------- crash safety


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    from revisit_ssl.engine import atomic_write
    target = tmp_path / 'epoch_1.pth'
    atomic_write(target, b'complete')

    def crash(f, data):
        f.write(data[:3])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b'replacement', write=crash)
    assert target.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temporary file left


def test_kill_during_checkpoint_save_resumes_exactly(demo_root, pretrained,
                                                     tmp_path):
    work_dir, signal_file = tmp_path / 'run', tmp_path / 'saving'
    opts = options(demo_root, **{
        'default_hooks.checkpoint.backend_args.backend': 'slow_atomic_local'})
    proc = train(work_dir, opts, wait=False, config=fault_config(tmp_path),
                 env=dict(CRASH_ON='epoch_2.pth', CRASH_SIGNAL=str(signal_file)))
    deadline = time.time() + 300
    while not signal_file.exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, 'the run never reached the epoch-2 save'
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # half of epoch_2.pth is written
    proc.wait()
    proc.stdout.close()
    leftovers = sorted(os.listdir(work_dir))
    assert 'epoch_2.pth' not in leftovers  # never a partial file under the final name
    assert any(name.startswith('.epoch_2.pth.') for name in leftovers)
    assert (work_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')

    _, out = train(work_dir, options(demo_root), '--resume')
    assert 'a checkpoint write interrupted by a crash' in out
    assert 'resumed epoch: 1, iter: 2' in out
    assert not any(name.startswith('.') for name in os.listdir(work_dir))
    assert_same_weights(work_dir / 'epoch_2.pth', pretrained / 'epoch_2.pth')


def test_damaged_last_checkpoint_pointer_is_repaired(demo_root, pretrained,
                                                     tmp_path):
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    # the pointer names a truncated file (as a crash in mmengine's plain writer leaves it)
    data = (pretrained / 'epoch_1.pth').read_bytes()
    (work_dir / 'epoch_1.pth').write_bytes(data)
    (work_dir / 'epoch_2.pth').write_bytes(data[:len(data) // 3])
    os.utime(work_dir / 'epoch_1.pth', (1, 1))  # older than the truncated file
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    _, out = train(work_dir, options(demo_root), '--resume')
    assert 'which is not a complete checkpoint' in out
    assert 'resumed epoch: 1, iter: 2' in out
    assert_same_weights(work_dir / 'epoch_2.pth', pretrained / 'epoch_2.pth')
