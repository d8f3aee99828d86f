"""DualQueueMemory (the queues, the pointer, gather and enqueue), the checkpoint layout it keeps,
and the release's no-warm-up NN variant (search after the enqueue, logits from before it)."""
import random

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import load_state_dict
from test_knn_moco import build, naive_knn_loss, views

from revisit_ssl.models.heads import DualQueueHead
from revisit_ssl.models.losses import find_neighbours
from revisit_ssl.models.memories import DualQueueMemory

#: The head's keys in every checkpoint written so far (and still written).
HEAD_KEYS = {'head.key_queue', 'head.backbone_queue', 'head.queue_ptr'}


def unit(*shape, dim, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=dim)


# --------------------------------------------------------------------------- the memory


@pytest.mark.parametrize('seed', range(5))
def test_enqueue_is_a_fifo_of_aligned_columns_over_random_batches(seed):
    """Against a list model of the queue: batch sizes that divide K, many wraps."""
    rng = random.Random(seed)
    K = 24
    memory = DualQueueMemory(K, feat_dim=3, backbone_dim=5)
    columns = [(memory.key_queue[:, j].clone(), memory.backbone_queue[:, j].clone())
               for j in range(K)]
    ptr = 0
    batch = rng.choice([1, 2, 3, 4, 6, 8, 12])
    for step in range(rng.randint(5, 15)):
        key = unit(batch, 3, dim=1, seed=seed * 100 + step)
        key_backbone = unit(batch, 5, dim=1, seed=seed * 100 + step + 50)
        memory.enqueue(key, key_backbone)
        for r in range(batch):
            columns[(ptr + r) % K] = (key[r], key_backbone[r])
        ptr = (ptr + batch) % K
        assert int(memory.queue_ptr) == ptr
    for j, (k, h) in enumerate(columns):
        assert torch.equal(memory.key_queue[:, j], k)
        assert torch.equal(memory.backbone_queue[:, j], h)


def test_backbone_queue_after_is_what_enqueue_writes_and_writes_nothing():
    memory = DualQueueMemory(8, feat_dim=3, backbone_dim=4, backbone_dtype='float16')
    memory.enqueue(unit(4, 3, dim=1, seed=0), unit(4, 4, dim=1, seed=1))
    before = {k: v.clone() for k, v in memory.state_dict().items()}
    incoming = unit(4, 4, dim=1, seed=2)
    after = memory.backbone_queue_after(incoming)
    for k, v in memory.state_dict().items():
        assert torch.equal(v, before[k]), k
    memory.enqueue(unit(4, 3, dim=1, seed=3), incoming)
    assert after.dtype == torch.float16
    assert torch.equal(after, memory.backbone_queue)


def test_without_a_backbone_queue_only_keys_are_stored():
    memory = DualQueueMemory(8, feat_dim=3)
    assert set(memory.state_dict()) == {'key_queue', 'queue_ptr'}
    memory.enqueue(unit(2, 3, dim=1, seed=0))
    assert int(memory.queue_ptr) == 2


def test_a_batch_that_does_not_divide_the_queue_is_an_error():
    memory = DualQueueMemory(10, feat_dim=3, backbone_dim=4)
    with pytest.raises(ValueError, match='K=10 is not a multiple of the global batch size 4'):
        memory.enqueue(unit(4, 3, dim=1, seed=0), unit(4, 4, dim=1, seed=1))
    assert int(memory.queue_ptr) == 0


# --------------------------------------------------------------------------- checkpoint layout


@pytest.mark.parametrize('use_knn', [True, False])
def test_checkpoints_keep_the_head_names_of_the_queues(use_knn):
    model = build(use_knn=use_knn)
    head_keys = {k for k in model.state_dict() if k.startswith('head.')}
    expected = HEAD_KEYS if use_knn else HEAD_KEYS - {'head.backbone_queue'}
    assert head_keys == expected
    assert model.head.state_dict()['key_queue'] is not None


@pytest.mark.parametrize('loader', ['torch', 'mmengine'])
def test_an_old_layout_state_dict_loads_into_the_memory(loader):
    """A checkpoint of before the memory module (head.key_queue, ...), built key by key."""
    model = build(queue_len=24)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith('head.')}
    key_queue = unit(16, 24, dim=0, seed=7)
    backbone_queue = unit(64, 24, dim=0, seed=8)
    state.update({'head.key_queue': key_queue,
                  'head.backbone_queue': backbone_queue,
                  'head.queue_ptr': torch.tensor([8])})
    if loader == 'torch':
        model.load_state_dict(state, strict=True)  # no missing, no unexpected key
    else:
        load_state_dict(model, state, strict=True)  # what load_from / --resume use
    assert torch.equal(model.head.memory.key_queue, key_queue)
    assert torch.equal(model.head.memory.backbone_queue, backbone_queue)
    assert int(model.head.memory.queue_ptr) == 8
    assert 'head.key_queue' in state  # the caller's dict is not changed


def test_missing_queues_are_reported_under_the_checkpoint_names():
    model = build(queue_len=24)
    state = {k: v for k, v in model.state_dict().items() if k != 'head.backbone_queue'}
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ['head.backbone_queue']
    assert result.unexpected_keys == []


def test_the_queue_shape_error_names_the_origin_and_the_head_key():
    saved = build(queue_len=12).state_dict()
    model = build(queue_len=24)
    model.checkpoint_origin = '--resume work_dirs/x/epoch_3.pth'
    with pytest.raises(ValueError) as err:
        model.load_state_dict(saved, strict=False)
    msg = str(err.value)
    assert msg.startswith('--resume work_dirs/x/epoch_3.pth: its head.key_queue has '
                          'shape (16, 12)')
    assert 'model.head.queue_len=12' in msg


# --------------------------------------------------------------------------- no-warm-up variant


def constructed_head(search_after_enqueue, seed=0):
    """K = 8 with the pointer at 4; a step of B = 2 writes columns 4 and 5."""
    head = DualQueueHead(queue_len=8, feat_dim=4, backbone_dim=6, temperature=0.2,
                         knn_k=1, search_after_enqueue=search_after_enqueue)
    head.memory.key_queue.copy_(unit(4, 8, dim=0, seed=seed))
    head.memory.backbone_queue.copy_(unit(6, 8, dim=0, seed=seed + 1))
    head.memory.queue_ptr[0] = 4
    return head


def test_after_enqueue_a_query_can_select_its_own_key_whose_column_holds_the_evicted_key():
    key = unit(2, 4, dim=1, seed=10)
    key_backbone = unit(2, 6, dim=1, seed=11)
    query = unit(2, 4, dim=1, seed=12)
    query_backbone = key_backbone.clone()  # each query's nearest entry is its own key
    default, variant = constructed_head(False), constructed_head(True)
    old_key_queue = default.memory.key_queue.clone()
    old_backbone_queue = default.memory.backbone_queue.clone()

    # variant: the neighbour of query i is column 4 + i, the column its own key is written to
    pending = variant._pending_enqueue(key_backbone)
    assert find_neighbours(query_backbone, variant.memory.backbone_queue, 1,
                           overwrite=pending).flatten().tolist() == [4, 5]
    # default: the neighbours come from the queue before the step, never this step's keys
    expected_default = find_neighbours(query_backbone, old_backbone_queue, 1)
    raw = {}
    for name, head in (('default', default), ('variant', variant)):
        losses = head.loss(query, key, query_backbone, knn_active=True,
                           key_backbone=key_backbone)
        raw[name] = losses['knn_raw'].item()
        # the loss writes nothing: the enqueue is the algorithm's, after it
        assert torch.equal(head.memory.key_queue, old_key_queue)
        assert int(head.memory.queue_ptr) == 4

    # logits of both variants are those of the key queue before the enqueue: at columns 4, 5
    # the variant's positive is the key the enqueue evicts, not the query's own key
    log_prob = F.log_softmax(query @ old_key_queue / 0.2, dim=1)
    evicted = -(log_prob[0, 4] + log_prob[1, 5]) / 2
    assert raw['variant'] == pytest.approx(evicted.item(), abs=1e-6)
    picked = expected_default.flatten()
    assert raw['default'] == pytest.approx(
        -(log_prob[0, picked[0]] + log_prob[1, picked[1]]).item() / 2, abs=1e-6)
    assert raw['default'] == pytest.approx(naive_knn_loss(
        query.double(), query_backbone.double(), old_key_queue.double(),
        old_backbone_queue.double(), 1, 0.2), abs=1e-6)
    assert raw['variant'] != pytest.approx(raw['default'], abs=1e-3)


def test_the_variant_needs_this_steps_backbone_keys_and_the_nn_loss():
    head = constructed_head(True)
    with pytest.raises(ValueError, match='search_after_enqueue=True needs key_backbone'):
        head.loss(unit(2, 4, dim=1, seed=0), unit(2, 4, dim=1, seed=1),
                  unit(2, 6, dim=1, seed=2), knn_active=True)
    with pytest.raises(ValueError, match='needs use_knn=True'):
        DualQueueHead(queue_len=8, use_knn=False, search_after_enqueue=True)


def test_the_variant_trains_the_same_queues_and_differs_only_in_the_nn_loss():
    """Same seeds, two steps: the queues evolve identically; loss_inst is the same."""
    runs = {}
    for after in (False, True):
        model = build(seed=0, warmup=0, queue_len=8, knn_k=2)
        model.head.search_after_enqueue = after
        runs[after] = [model.loss(views(batch=4, num_small=1, seed=s), None)
                       for s in range(2)], model.head.memory.state_dict()
    (default, mem_default), (variant, mem_variant) = runs[False], runs[True]
    for k in mem_default:
        assert torch.equal(mem_default[k], mem_variant[k]), k
    for d, v in zip(default, variant):
        assert torch.equal(d['loss_inst'], v['loss_inst'])
    assert any(not torch.equal(d['knn_raw'], v['knn_raw'])
               for d, v in zip(default, variant))



@pytest.mark.parametrize('dtype', ['float32', 'float16', 'bfloat16'])
def test_search_with_the_pending_enqueue_equals_search_in_the_queue_after_it(dtype):
    # the variant searches without copying the queue: same neighbours as in the full copy
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        memory = DualQueueMemory(queue_len=32, feat_dim=4, backbone_dim=8,
                                 backbone_dtype=dtype)
        memory.queue_ptr[0] = 8 * (seed % 4)
        incoming = F.normalize(torch.randn(8, 8, generator=g), dim=1)
        queries = F.normalize(torch.randn(6, 8, generator=g), dim=1)
        after = memory.backbone_queue_after(incoming)
        pending = memory.incoming_backbone(incoming)
        assert torch.equal(
            find_neighbours(queries, memory.backbone_queue, 5, overwrite=pending),
            find_neighbours(queries, after, 5))
