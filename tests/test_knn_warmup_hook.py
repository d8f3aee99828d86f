"""KNNWarmupHook: the NN warm-up follows the runner's epoch or iteration, resumes right, and a
warm-up without the hook stops instead of training without (or with) the NN loss."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop, Runner
from mmpretrain.structures import DataSample
from test_knn_moco import build, runner_at, tiny_cfg, total_loss, views

from revisit_ssl.engine.hooks import KNNWarmupHook, TrainingGuardError
from revisit_ssl.models.algorithms import UnswitchedWarmupError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# --------------------------------------------------------------------------- the hook alone


@pytest.mark.parametrize('epoch, active', [(0, False), (2, False), (3, True),
                                           (7, True)])
def test_state_after_a_resume_at_any_epoch_follows_the_runner(epoch, active):
    """A resumed run starts with a fresh hook: before_train alone must give the right state."""
    model = build(warmup=3)
    model.set_knn_active(not active)  # whatever the model held before the resume
    KNNWarmupHook().before_train(runner_at(model, epoch=epoch, iter=epoch * 10))
    assert model.knn_active() is active


def test_switches_on_at_the_first_iteration_of_the_first_nn_epoch():
    model = build(warmup=2)
    hook = KNNWarmupHook()
    hook.before_train(runner_at(model, epoch=1, iter=7))  # resumed inside the warm-up
    states = []
    for epoch, it in ((1, 7), (1, 8), (2, 9), (2, 10)):
        hook.before_train_iter(runner_at(model, epoch=epoch, iter=it), it)
        states.append(model.knn_active())
    assert states == [False, False, True, True]


@pytest.mark.parametrize('loop', ['epoch', 'iter'])
def test_iteration_warmup_counts_runner_iter_in_either_loop(loop):
    kwargs = {} if loop == 'epoch' else dict(loop=IterBasedTrainLoop)
    model = build(warmup=100, knn_warmup_iters=5)  # knn_warmup_iters replaces the epochs
    hook = KNNWarmupHook()
    hook.before_train(runner_at(model, iter=3, **kwargs))
    states = []
    for it in (3, 4, 5, 6):
        hook.before_train_iter(runner_at(model, epoch=0, iter=it, **kwargs), it)
        states.append(model.knn_active())
    assert states == [False, False, True, True]


def test_an_iteration_loop_with_a_warmup_in_epochs_names_knn_warmup_iters():
    model = build(warmup=3)
    loader = torch.utils.data.DataLoader(list(range(100)), batch_size=8)
    runner = runner_at(model, loop=IterBasedTrainLoop, train_dataloader=loader)
    with pytest.raises(ValueError) as err:
        KNNWarmupHook().before_train(runner)
    msg = str(err.value)
    for part in ('IterBasedTrainLoop does not count epochs',
                 'model.knn_warmup_epochs=3', 'model.knn_warmup_iters=N',
                 '100 images at 8 per process x 1 process(es) is 12 iterations',
                 '3 epochs = 36'):
        assert part in msg, msg
    # without a warm-up there is nothing to count
    model0 = build(warmup=0)
    KNNWarmupHook().before_train(runner_at(model0, loop=IterBasedTrainLoop))
    assert model0.knn_active()


def test_the_hook_refuses_another_model_with_the_fix():
    with pytest.raises(TypeError, match='Take it out of the config.s default_hooks'):
        KNNWarmupHook().before_train(runner_at(torch.nn.Linear(2, 2)))


def test_moco_v2_without_nn_is_never_switched_on():
    model = build(use_knn=False, warmup=1)
    KNNWarmupHook().before_train(runner_at(model, epoch=5))
    assert model.knn_active() is False
    assert set(model.loss(views(batch=4), None)) == {'loss_inst'}


# --------------------------------------------------------------------------- without the hook


def test_a_warmup_without_the_hook_stops_at_the_first_step_with_the_fix():
    model = build(warmup=2)
    ptr = int(model.head.queue_ptr)
    with pytest.raises(RuntimeError) as err:
        model.loss(views(batch=4), None)
    msg = str(err.value)
    for part in ('knn_warmup_epochs=2', 'KNNWarmupHook',
                 "default_hooks.knn_warmup=dict(type='KNNWarmupHook')",
                 'model.knn_warmup_epochs=0', 'model.set_knn_active'):
        assert part in msg, msg
    assert int(model.head.queue_ptr) == ptr  # nothing was enqueued
    with pytest.raises(RuntimeError, match='knn_warmup_iters=4'):
        build(warmup=0, knn_warmup_iters=4).loss(views(batch=4), None)


def test_no_warmup_needs_no_hook_and_has_the_nn_loss_from_the_first_step():
    model = build(warmup=0)
    losses = model.loss(views(batch=4), None)
    assert torch.allclose(total_loss(model, losses),
                          losses['loss_inst'] + 0.4 * losses['knn_raw'])
    assert losses['loss_knn'].requires_grad


@pytest.mark.parametrize('kwargs, match', [
    (dict(warmup=-1), 'knn_warmup_epochs'),
    (dict(knn_warmup_iters=-2), 'knn_warmup_iters'),
])
def test_bad_warmup_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_pretraining_configs_keep_the_hook_when_custom_hooks_are_replaced():
    for rel in ('configs/knn_moco_coco.py', 'configs/knn_moco_demo.py',
                'configs/ablation/6_nn_coco.py'):
        cfg = Config.fromfile(osp.join(ROOT, rel))
        cfg.merge_from_dict({'custom_hooks': []})
        assert cfg.default_hooks.knn_warmup == dict(type='KNNWarmupHook'), rel


# --------------------------------------------------------------------------- in a real runner


class _Views(torch.utils.data.Dataset):
    """8 images as [query, key] views of 32 px, fixed per index."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        return dict(inputs=[torch.rand(3, 32, 32, generator=g) * 255
                            for _ in range(2)],
                    data_samples=DataSample())


class _Record(Hook):
    """Keeps (epoch, iter, loss_knn, knn_raw) of every training iteration."""

    def __init__(self):
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.rows.append((runner.epoch, runner.iter, float(outputs['loss_knn'].detach()),
                          float(outputs['knn_raw'])))


def _runner(work_dir, train_cfg, resume=False, knn_warmup=True, checkpoint=None,
            guard=False, **model_kwargs):
    record = _Record()
    default_hooks = dict(
        checkpoint=checkpoint or dict(type='CheckpointHook', interval=1),
        logger=dict(type='LoggerHook', interval=1))
    if knn_warmup:
        default_hooks['knn_warmup'] = dict(type='KNNWarmupHook')
    if guard:
        default_hooks['guard'] = dict(type='TrainingGuardHook')
    runner = Runner(
        model=tiny_cfg(queue_len=16, **model_kwargs),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Views(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4,  # 2 iterations per epoch
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=default_hooks,
        custom_hooks=[record],
        resume=resume,
        default_scope='mmpretrain',
        log_level='WARNING')
    return runner, record.rows


def _assert_on(rows, on):
    for epoch, it, weighted, raw in rows:
        assert raw > 0
        if on(epoch, it):
            assert weighted == pytest.approx(0.4 * raw, rel=1e-5), (epoch, it)
        else:
            assert weighted == 0., (epoch, it)


def test_epoch_loop_resumes_across_the_warmup_boundary(tmp_path):
    runner, first = _runner(tmp_path, dict(by_epoch=True, max_epochs=1), warmup=1)
    runner.train()
    assert [(e, i) for e, i, _, _ in first] == [(0, 0), (0, 1)]
    _assert_on(first, lambda e, i: False)
    runner, second = _runner(tmp_path, dict(by_epoch=True, max_epochs=2),
                             resume=True, warmup=1)
    runner.train()
    assert [(e, i) for e, i, _, _ in second] == [(1, 2), (1, 3)]
    _assert_on(second, lambda e, i: True)


def test_iteration_loop_resumes_inside_the_warmup(tmp_path):
    checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    runner, first = _runner(tmp_path, dict(by_epoch=False, max_iters=2),
                            checkpoint=checkpoint, warmup=5, knn_warmup_iters=3)
    runner.train()
    runner, second = _runner(tmp_path, dict(by_epoch=False, max_iters=4),
                             resume=True, checkpoint=checkpoint, warmup=5,
                             knn_warmup_iters=3)
    runner.train()
    assert [i for _, i, _, _ in first + second] == [0, 1, 2, 3]
    _assert_on(first + second, lambda e, i: i >= 3)


def test_a_runner_without_the_hook_stops_at_the_first_step(tmp_path):
    runner, rows = _runner(tmp_path, dict(by_epoch=True, max_epochs=1),
                           knn_warmup=False, warmup=1)
    with pytest.raises(UnswitchedWarmupError, match='KNNWarmupHook is not among'):
        runner.train()
    assert rows == []


def test_the_guard_stops_a_run_without_the_hook_before_any_data(tmp_path):
    runner, rows = _runner(tmp_path, dict(by_epoch=True, max_epochs=1),
                           knn_warmup=False, guard=True, warmup=1)
    with pytest.raises(TrainingGuardError, match='KNNWarmupHook is not among') as err:
        runner.train()
    # the same fix as the model's own error, raised in before_run: nothing stepped
    assert str(err.value) == runner.model.unswitched_warmup_message()
    assert rows == [] and runner.iter == 0
    assert err.traceback[-1].name == '_check_warmup_is_switched'


def test_the_guard_lets_a_run_without_warmup_through_without_the_hook(tmp_path):
    runner, rows = _runner(tmp_path, dict(by_epoch=True, max_epochs=1),
                           knn_warmup=False, guard=True, warmup=0)
    runner.train()
    assert len(rows) == 2
    _assert_on(rows, lambda e, i: True)
