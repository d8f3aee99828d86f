"""KNNMoCo + DualQueueHead: exact step semantics on a tiny ResNet-18."""
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import MODELS

from revisit_ssl.engine.hooks import KNNWarmupHook
from revisit_ssl.models.losses import find_neighbours, knn_contrastive_loss

WIDTH = 8  # ResNet-18 with 8 base channels: last stage has 64 channels
BACKBONE_DIM = WIDTH * 8
FEAT_DIM = 16


def tiny_cfg(queue_len=24, use_knn=True, knn_k=3, warmup=0, momentum=0.01,
             **model_kwargs):
    return dict(
        type='KNNMoCo',
        momentum=momentum,
        knn_warmup_epochs=warmup,
        backbone=dict(
            type='ResNet',
            depth=18,
            base_channels=WIDTH,
            stem_channels=WIDTH,
            out_indices=(3, ),
            norm_cfg=dict(type='BN')),
        neck=dict(
            type='MoCoV2Neck',
            in_channels=BACKBONE_DIM,
            hid_channels=32,
            out_channels=FEAT_DIM,
            with_avg_pool=True),
        head=dict(
            type='DualQueueHead',
            queue_len=queue_len,
            feat_dim=FEAT_DIM,
            backbone_dim=BACKBONE_DIM,
            temperature=0.2,
            use_knn=use_knn,
            knn_k=knn_k,
            knn_weight=0.4),
        **model_kwargs)


def build(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS.build(tiny_cfg(**kwargs))
    model.init_weights()
    model.train()
    return model


def views(batch=4, num_small=0, size=32, small=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    large = [torch.randn(batch, 3, size, size, generator=g) for _ in range(2)]
    return large + [
        torch.randn(batch, 3, small, small, generator=g)
        for _ in range(num_small)
    ]


def runner_at(model, epoch=0, iter=0, loop=EpochBasedTrainLoop, **extra):
    """What KNNWarmupHook reads of a runner: its model, counters and loop type."""
    return SimpleNamespace(model=model, epoch=epoch, iter=iter,
                           train_loop=object.__new__(loop), world_size=1, **extra)


def total_loss(model, losses):
    loss, _ = model.parse_losses(losses)
    return loss


# --------------------------------------------------------------------------- kNN loss


def naive_knn_loss(q, h, key_queue, backbone_queue, k, temperature):
    """Row-by-row loop, written from the paper's equation, independent of the module."""
    rows = []
    for i in range(q.shape[0]):
        sims = [float(h[i] @ backbone_queue[:, j])
                for j in range(backbone_queue.shape[1])]
        idx = sorted(range(len(sims)), key=lambda j: -sims[j])[:k]
        logits = [float(q[i] @ key_queue[:, j]) / temperature
                  for j in range(key_queue.shape[1])]
        m = max(logits)
        log_z = m + torch.log(torch.tensor([sum(
            torch.exp(torch.tensor(v - m, dtype=torch.float64))
            for v in logits)], dtype=torch.float64)).item()
        rows.append(-sum(logits[j] - log_z for j in idx) / k)
    return sum(rows) / len(rows)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_knn_loss_matches_naive_loop(seed):
    g = torch.Generator().manual_seed(seed)
    n, K, d, c, k = 7, 30, 10, 6, 5
    q = F.normalize(torch.randn(n, c, generator=g, dtype=torch.float64), dim=1)
    h = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    key_queue = F.normalize(
        torch.randn(c, K, generator=g, dtype=torch.float64), dim=0)
    backbone_queue = F.normalize(
        torch.randn(d, K, generator=g, dtype=torch.float64), dim=0)
    T = 0.2
    neighbours = find_neighbours(h, backbone_queue, k)
    ours = knn_contrastive_loss(q @ key_queue / T, neighbours)
    expected = naive_knn_loss(q, h, key_queue, backbone_queue, k, T)
    assert abs(ours.item() - expected) < 1e-6


def test_head_knn_raw_matches_naive_loop_with_multicrop():
    model = build(use_knn=True, knn_k=4, warmup=0)
    inputs = views(batch=4, num_small=2)
    key_queue = model.head.key_queue.clone()
    backbone_queue = model.head.backbone_queue.clone()
    q, h = model._encode_queries(inputs)
    assert q.shape == (12, FEAT_DIM) and h.shape == (12, BACKBONE_DIM)
    losses = model.loss(inputs, None)
    expected = naive_knn_loss(q.detach().double(), h.double(),
                              key_queue.double(), backbone_queue.double(), 4,
                              0.2)
    assert abs(losses['knn_raw'].item() - expected) < 1e-5
    assert torch.allclose(losses['loss_knn'], 0.4 * losses['knn_raw'])


def test_instance_loss_positive_is_own_image_key():
    """Small crop rows use the key of their own image as the positive (index 0)."""
    model = build(use_knn=False)
    head = model.head
    g = torch.Generator().manual_seed(3)
    key = F.normalize(torch.randn(3, FEAT_DIM, generator=g), dim=1)
    query = F.normalize(torch.randn(9, FEAT_DIM, generator=g), dim=1)
    loss = head.loss(query, key)['loss_inst']
    expected = 0.
    for r in range(9):
        pos = query[r] @ key[r % 3]
        neg = query[r] @ head.key_queue
        logits = torch.cat([pos[None], neg]) / 0.2
        expected += -(logits[0] - torch.logsumexp(logits, 0))
    assert torch.allclose(loss, expected / 9, atol=1e-6)


# --------------------------------------------------------------------------- peer: MoCo


def test_equals_mmpretrain_moco_without_nn_and_multicrop(monkeypatch):
    """n=0 and NN off: same loss and same parameters after one SGD step as MoCo."""
    import mmpretrain.models.selfsup.moco as moco_module
    ours = build(seed=0, use_knn=False, queue_len=16, momentum=0.01)
    torch.manual_seed(0)
    moco = MODELS.build(
        dict(
            type='MoCo',
            queue_len=16,
            feat_dim=FEAT_DIM,
            momentum=0.01,
            backbone=tiny_cfg()['backbone'],
            neck=tiny_cfg()['neck'],
            head=dict(
                type='ContrastiveHead',
                loss=dict(type='CrossEntropyLoss'),
                temperature=0.2)))
    moco.train()
    # same weights and queue
    moco.backbone.load_state_dict(ours.backbone.state_dict())
    moco.neck.load_state_dict(ours.neck.state_dict())
    moco.queue.copy_(ours.head.key_queue)
    # single process: MoCo shuffles inside the batch (which cannot change BN statistics);
    # we do not shuffle. Take the shuffle out to compare bit for bit.
    monkeypatch.setattr(moco_module, 'batch_shuffle_ddp',
                        lambda x: (x, torch.arange(x.shape[0])))
    monkeypatch.setattr(moco_module, 'batch_unshuffle_ddp', lambda x, i: x)

    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.5, momentum=0.9)
    opt_moco = torch.optim.SGD(moco.parameters(), lr=0.5, momentum=0.9)
    for step in range(2):
        inputs = views(batch=4, seed=10 + step)
        l_ours = total_loss(ours, ours.loss(inputs, None))
        l_moco = total_loss(moco, moco.loss(inputs, None))
        assert torch.allclose(l_ours, l_moco, atol=1e-6), step
        for opt, loss in ((opt_ours, l_ours), (opt_moco, l_moco)):
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, p), p_moco in zip(ours.backbone.named_parameters(),
                                 moco.backbone.parameters()):
        assert torch.allclose(p, p_moco, atol=1e-6), name
    for p, p_moco in zip(ours.momentum_encoder.parameters(),
                         moco.encoder_k.parameters()):
        assert torch.allclose(p, p_moco, atol=1e-6)
    assert torch.allclose(ours.head.key_queue, moco.queue, atol=1e-6)
    assert int(ours.head.queue_ptr) == int(moco.queue_ptr) == 8


# --------------------------------------------------------------------------- queues


def expected_keys(model, im_key):
    """Keys recomputed independently from the momentum encoder after the step."""
    encoder = copy.deepcopy(model.momentum_encoder.module).train()
    with torch.no_grad():
        feats = encoder[0](im_key)
        k = F.normalize(encoder[1](feats)[0], dim=1)
        hk = F.normalize(feats[-1].mean(dim=(2, 3)), dim=1)
    return k, hk


def test_queues_hold_keys_at_right_columns_across_wrap():
    model = build(queue_len=12, use_knn=True, knn_k=2)
    batch = 4
    written = {}
    for step in range(5):  # 5 x 4 = 20 > 12: the pointer wraps after step 2
        inputs = views(batch=batch, num_small=1, seed=100 + step)
        ptr = int(model.head.queue_ptr)
        assert ptr == (step * batch) % 12
        model.loss(inputs, None)
        k, hk = expected_keys(model, inputs[1])
        written[step] = (ptr, k, hk)
        assert torch.allclose(model.head.key_queue[:, ptr:ptr + batch], k.T,
                              atol=1e-5)
        assert torch.allclose(
            model.head.backbone_queue[:, ptr:ptr + batch], hk.T, atol=1e-5)
        assert int(model.head.queue_ptr) == (ptr + batch) % 12
    # after the wrap, columns 0..3 hold step 3, 4..7 step 4 and 8..11 still step 2
    for step, cols in ((3, slice(0, 4)), (4, slice(4, 8)), (2, slice(8, 12))):
        _, k, hk = written[step]
        assert torch.allclose(model.head.key_queue[:, cols], k.T, atol=1e-5)
        assert torch.allclose(model.head.backbone_queue[:, cols], hk.T,
                              atol=1e-5)


def test_queues_and_pointer_survive_save_and_load(tmp_path):
    model = build(queue_len=12)
    for step in range(2):
        model.loss(views(batch=4, seed=step), None)
    state = model.state_dict()
    for key in ('head.key_queue', 'head.backbone_queue', 'head.queue_ptr'):
        assert key in state
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': state}, path)
    fresh = build(seed=123, queue_len=12)
    assert not torch.equal(fresh.head.key_queue, model.head.key_queue)
    loaded = torch.load(path, weights_only=True)['state_dict']
    fresh.load_state_dict(loaded)
    assert torch.equal(fresh.head.key_queue, model.head.key_queue)
    assert torch.equal(fresh.head.backbone_queue, model.head.backbone_queue)
    assert int(fresh.head.queue_ptr) == 8


def test_loading_a_checkpoint_with_another_queue_len_is_an_error():
    saved = build(queue_len=12).state_dict()
    model = build(queue_len=24)
    with pytest.raises(ValueError, match='queue_len=12'):
        model.load_state_dict(saved, strict=False)


# --------------------------------------------------------------------------- warm-up


def test_warmup_excludes_then_includes_weighted_knn():
    model = build(warmup=2, use_knn=True)
    hook = KNNWarmupHook()
    hook.before_train(runner_at(model))
    for step, (epoch, active) in enumerate(((0, False), (1, False), (2, True),
                                            (5, True))):
        hook.before_train_iter(runner_at(model, epoch=epoch), 0)
        losses = model.loss(views(batch=4, seed=epoch), None)
        # the queues advance in every epoch, warm-up included
        assert int(model.head.queue_ptr) == (step + 1) * 4 % 24
        total = total_loss(model, losses)
        assert losses['knn_raw'] > 0
        if active:
            assert torch.allclose(
                total, losses['loss_inst'] + 0.4 * losses['knn_raw'])
            assert losses['loss_knn'].requires_grad
        else:
            assert torch.allclose(total, losses['loss_inst'])
            assert float(losses['loss_knn']) == 0.


def test_backbone_queue_fills_during_warmup():
    model = build(warmup=10, use_knn=True, queue_len=8)
    model.set_knn_active(False)  # what KNNWarmupHook sets in epoch 0
    before = model.head.backbone_queue.clone()
    inputs = views(batch=4, seed=5)
    model.loss(inputs, None)
    _, hk = expected_keys(model, inputs[1])
    assert torch.allclose(model.head.backbone_queue[:, :4], hk.T, atol=1e-5)
    assert torch.equal(model.head.backbone_queue[:, 4:], before[:, 4:])


def test_nn_off_has_no_backbone_queue_and_no_knn_terms():
    model = build(use_knn=False)
    assert not hasattr(model.head, 'backbone_queue')
    losses = model.loss(views(batch=4), None)
    assert set(losses) == {'loss_inst'}


# --------------------------------------------------------------------------- gradients / EMA


def test_gradients_reach_online_encoder_only_and_ema_update_is_exact():
    m = 0.05
    model = build(momentum=m, warmup=0)
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.loss(views(batch=4, seed=0), None)  # first update copies the weights
    for step in range(2):
        online = [p.detach().clone() for p in
                  list(model.backbone.parameters()) +
                  list(model.neck.parameters())]
        momentum_before = [
            p.detach().clone() for p in model.momentum_encoder.parameters()
        ]
        losses = model.loss(views(batch=4, num_small=2, seed=step + 1), None)
        loss = total_loss(model, losses)
        opt.zero_grad()
        loss.backward()
        for p in model.momentum_encoder.parameters():
            assert not p.requires_grad and p.grad is None
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.neck.parameters())
        assert model.backbone.conv1.weight.grad.abs().sum() > 0
        opt.step()
        for p_new, p_old, p_online in zip(model.momentum_encoder.parameters(),
                                          momentum_before, online):
            assert torch.allclose(p_new, (1 - m) * p_old + m * p_online,
                                  atol=1e-6)


# --------------------------------------------------------------------------- errors / shapes


def test_queue_len_not_multiple_of_global_batch_names_everything():
    model = build(queue_len=10)
    with pytest.raises(ValueError) as err:
        model.loss(views(batch=4), None)
    msg = str(err.value)
    for part in ('K=10', 'global batch size 4', '4 per process',
                 '1 processes', 'model.head.queue_len'):
        assert part in msg


def test_multicrop_views_of_another_size_go_through():
    model = build(queue_len=24, num_small_crops=4)
    inputs = views(batch=3, num_small=4, size=32, small=16)
    q, h = model._encode_queries(inputs)
    assert q.shape == (15, FEAT_DIM) and h.shape == (15, BACKBONE_DIM)
    losses = model.loss(inputs, None)
    assert torch.isfinite(total_loss(model, losses))
    assert int(model.head.queue_ptr) == 3  # only the keys are enqueued


def test_num_small_crops_mismatch_is_an_error():
    model = build(num_small_crops=4)
    with pytest.raises(ValueError, match='num_small_crops=4'):
        model.loss(views(batch=4, num_small=2), None)


@pytest.mark.parametrize('kwargs, match', [
    (dict(queue_len=0), 'queue_len'),
    (dict(knn_k=100, queue_len=24), 'knn_k=100'),
])
def test_bad_head_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)
