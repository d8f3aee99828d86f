"""KNNMonitorHook outside a full training run: mode handling, BN statistics, errors."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from mmpretrain.registry import HOOKS, MODELS

from revisit_ssl.engine.hooks import KNNMonitorHook


def _loader(root, split, size=32):
    return dict(
        batch_size=16,
        num_workers=0,
        dataset=dict(
            type='mmpretrain.CustomDataset',
            data_root=root,
            data_prefix=split,
            pipeline=[
                dict(type='mmpretrain.LoadImageFromFile'),
                dict(type='mmpretrain.ResizeEdge', scale=size, edge='short'),
                dict(type='mmpretrain.CenterCrop', crop_size=size),
                dict(type='mmpretrain.PackInputs'),
            ]))


class _Visualizer:

    def __init__(self):
        self.calls = []

    def add_scalars(self, scalars, step=0, **kwargs):
        self.calls.append((step, dict(scalars)))


def _runner(model, name):
    return SimpleNamespace(
        model=model,
        seed=0,
        epoch=0,
        iter=0,
        max_epochs=4,
        message_hub=MessageHub.get_instance(name),
        visualizer=_Visualizer(),
        logger=MMLogger.get_instance(name))


def _model():
    return MODELS.build(
        dict(
            type='MoCo',
            queue_len=32,
            feat_dim=16,
            data_preprocessor=dict(
                type='SelfSupDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True),
            backbone=dict(type='ResNet', depth=18),
            neck=dict(
                type='MoCoV2Neck',
                in_channels=512,
                hid_channels=32,
                out_channels=16),
            head=dict(
                type='ContrastiveHead',
                loss=dict(type='CrossEntropyLoss'))))


def test_registered_and_built_from_config(demo_root):
    hook = HOOKS.build(
        dict(
            type='KNNMonitorHook',
            train_dataloader=_loader(demo_root, 'train'),
            val_dataloader=_loader(demo_root, 'val'),
            topk=(3, )))
    assert isinstance(hook, KNNMonitorHook) and hook.topk == (3, )


def test_eval_mode_during_extraction_and_state_restored(demo_root):
    model = _model()
    model.train()
    model.neck.eval()  # a module deliberately in eval mode stays as the model left it ...
    bn = model.backbone.bn1
    stats_before = bn.running_mean.clone()
    hook = KNNMonitorHook(
        _loader(demo_root, 'train'), _loader(demo_root, 'val'), topk=(5, 100))
    runner = _runner(model, 'eval_mode_test')
    hook.before_train(runner)
    # ... the backbone ran in eval mode: BN running statistics did not move
    torch.testing.assert_close(bn.running_mean, stats_before)
    assert model.training and model.backbone.training and bn.training
    assert not model.neck.training
    scalars = runner.visualizer.calls[0][1]
    assert runner.visualizer.calls[0][0] == 0
    assert set(scalars) == {'knn_top1_k5', 'knn_top1_k100'}
    assert runner.message_hub.get_scalar(
        'train/knn_top1_k5').current() == scalars['knn_top1_k5']
    # k=100 exceeds the 48 training images and is capped, so it is a valid accuracy
    assert 0 <= scalars['knn_top1_k100'] <= 100


def test_interval_and_last_epoch(demo_root, monkeypatch):
    hook = KNNMonitorHook(
        _loader(demo_root, 'train'), _loader(demo_root, 'val'), interval=3,
        eval_before_train=False)
    calls = []
    monkeypatch.setattr(hook, 'evaluate',
                        lambda runner, **kw: calls.append(kw['epoch']))
    runner = _runner(None, 'interval_test')
    runner.max_epochs = 7
    hook.before_train(runner)
    for epoch in range(7):
        runner.epoch = epoch  # mmengine's index of the epoch that just ended
        hook.after_train_epoch(runner)
    assert calls == [3, 6, 7]


def test_missing_data_names_the_config_key(tmp_path):
    hook = KNNMonitorHook(
        _loader(str(tmp_path / 'nowhere'), 'train'),
        _loader(str(tmp_path / 'nowhere'), 'val'))
    with pytest.raises(FileNotFoundError,
                       match='train_dataloader.dataset.data_root'):
        hook.evaluate(_runner(_model(), 'missing_test'))


def test_class_mismatch_is_refused(demo_root, tmp_path):
    import shutil
    other = tmp_path / 'other'
    shutil.copytree(osp.join(demo_root, 'val'), other / 'val')
    shutil.rmtree(other / 'val' / 'star')
    hook = KNNMonitorHook(
        _loader(demo_root, 'train'), _loader(str(other), 'val'))
    with pytest.raises(ValueError, match='labels would not agree'):
        hook.evaluate(_runner(_model(), 'mismatch_test'))


def test_bad_arguments():
    loader = dict(dataset=dict(type='CustomDataset'))
    with pytest.raises(ValueError, match='interval'):
        KNNMonitorHook(loader, loader, interval=0)
    with pytest.raises(ValueError, match='topk'):
        KNNMonitorHook(loader, loader, topk=(0, ))
    with pytest.raises(TypeError, match='dataloader'):
        KNNMonitorHook('data/demo/train', loader)


def _odd_loaders(demo_root):
    """Odd split sizes, so DefaultSampler pads a shard and the gather must drop the pad."""
    train, val = _loader(demo_root, 'train'), _loader(demo_root, 'val')
    train['dataset']['indices'], val['dataset']['indices'] = 47, 23
    return train, val


def _dist_worker(rank, port, demo_root, out):
    import torch.distributed as dist
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # the same weights on both ranks
        hook = KNNMonitorHook(*_odd_loaders(demo_root), topk=(5, 20))
        result = hook.evaluate(_runner(_model(), f'dist_rank{rank}'))
        torch.save(result, f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


def test_distributed_gather_matches_single_process(demo_root, tmp_path):
    """Two gloo processes, each extracting half of the data, give the single-process result
    on every rank (rank 0 classifies, then broadcasts)."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    out = str(tmp_path / 'result')
    mp.spawn(_dist_worker, args=(port, demo_root, out), nprocs=2)
    torch.manual_seed(0)
    single = KNNMonitorHook(
        *_odd_loaders(demo_root), topk=(5, 20)).evaluate(
            _runner(_model(), 'dist_reference'))
    # 23 val images: every accuracy is a multiple of 100/23 (a padded duplicate would not be)
    for value in single.values():
        assert value * 23 / 100 == pytest.approx(round(value * 23 / 100),
                                                 abs=1e-3)
    for rank in range(2):
        assert torch.load(f'{out}.{rank}', weights_only=True) == single


def test_log_names_the_data_it_evaluates_on(demo_root):
    """A config that changes only train_dataloader still sees which folders the monitor reads."""
    import glob

    class _Lines:

        def __init__(self):
            self.lines = []

        def info(self, text):
            self.lines.append(text)

    runner = _runner(_model(), 'data_line_test')
    runner.logger = _Lines()
    KNNMonitorHook(_loader(demo_root, 'train'), _loader(demo_root, 'val'),
                   topk=(5, )).before_train(runner)
    counts = {
        split: len(glob.glob(osp.join(demo_root, split, '*', '*.jpg')))
        for split in ('train', 'val')
    }
    classes = len(glob.glob(osp.join(demo_root, 'train', '*', '')))
    assert counts['train'] and counts['val']
    expected = ('kNN monitor data: '
                f'train {counts["train"]} images in {osp.abspath(osp.join(demo_root, "train"))}, '
                f'val {counts["val"]} images in {osp.abspath(osp.join(demo_root, "val"))}; '
                f'{classes} classes')
    assert runner.logger.lines[0] == expected
    assert runner.logger.lines[1].startswith('kNN monitor (random-init baseline;')
