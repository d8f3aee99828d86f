"""Weighted kNN classifier (InstDisc) on hand-computable and random data."""
import math

import numpy as np
import pytest
import torch

from revisit_ssl.evaluation import (knn_top1, weighted_knn_predict,
                                    weighted_knn_scores)


def _gaussian_blobs(num_classes, per_class, dim, spread, seed):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=gen) * 10
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    feats = centres[labels] + spread * torch.randn(
        len(labels), dim, generator=gen)
    return feats, labels


def test_well_separated_gaussians_give_100_percent():
    train_x, train_y = _gaussian_blobs(5, 40, 16, 0.5, seed=0)
    test_x, test_y = _gaussian_blobs(5, 20, 16, 0.5, seed=0)
    # same centres (same seed) but fresh noise for the test points
    test_x = test_x + 0.3 * torch.randn_like(test_x)
    accs = knn_top1(train_x, train_y, test_x, test_y, 5, ks=(1, 20, 200))
    assert accs == {1: 100.0, 20: 100.0, 200: 100.0}


def test_votes_match_hand_computation():
    # memory on the unit circle, query at angle 0
    angles = torch.tensor([0.1, 0.2, 1.0, 3.0])
    memory = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[2.0, 0.0]])  # not unit length: cosine must normalise it
    scores = weighted_knn_scores(memory, labels, query, 2, k=3, temperature=0.5)
    expected = torch.tensor([[
        math.exp(math.cos(0.1) / 0.5),
        math.exp(math.cos(0.2) / 0.5) + math.exp(math.cos(1.0) / 0.5)
    ]])
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=0)
    # two weaker neighbours of class 1 outvote the single nearest of class 0 ...
    assert weighted_knn_predict(memory, labels, query, 2, k=3,
                                temperature=0.5).item() == 1
    # ... unless the temperature is low enough to make the nearest dominate
    assert weighted_knn_predict(memory, labels, query, 2, k=3,
                                temperature=0.01).item() == 0


def _reference_knn(train_x, train_y, query_x, num_classes, k, t):
    """Independent numpy implementation, one query at a time."""
    tx = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    preds = []
    for q in query_x:
        q = q / np.linalg.norm(q)
        sim = tx @ q
        order = np.argsort(-sim, kind='stable')[:min(k, len(tx))]
        votes = np.zeros(num_classes)
        for i in order:
            votes[train_y[i]] += np.exp(sim[i] / t)
        preds.append(votes.argmax())
    return np.array(preds)


@pytest.mark.parametrize('seed', range(20))
def test_matches_reference_on_random_draws(seed):
    rng = np.random.default_rng(seed)
    n, m, d, c = rng.integers(5, 60), rng.integers(1, 30), rng.integers(
        2, 12), rng.integers(2, 7)
    train_x = rng.standard_normal((n, d))
    train_y = rng.integers(c, size=n)
    query_x = rng.standard_normal((m, d))
    k = int(rng.integers(1, 80))  # sometimes larger than the memory
    ours = weighted_knn_predict(
        torch.from_numpy(train_x), torch.from_numpy(train_y),
        torch.from_numpy(query_x), int(c), k, 0.07).numpy()
    ref = _reference_knn(train_x, train_y, query_x, c, k, 0.07)
    np.testing.assert_array_equal(ours, ref)


def test_k_is_capped_at_memory_size():
    train_x, train_y = _gaussian_blobs(3, 4, 8, 0.1, seed=1)
    query = torch.randn(7, 8)
    capped = weighted_knn_scores(train_x, train_y, query, 3, k=200)
    full = weighted_knn_scores(train_x, train_y, query, 3, k=len(train_x))
    torch.testing.assert_close(capped, full)
    # all memory samples voted: the summed weights equal sum(exp(sim/T)) over the memory
    sims = torch.nn.functional.normalize(query, dim=1) @ \
        torch.nn.functional.normalize(train_x, dim=1).t()
    torch.testing.assert_close(capped.sum(1), (sims / 0.07).exp().sum(1))


def test_chunking_does_not_change_scores():
    train_x, train_y = _gaussian_blobs(4, 10, 6, 3.0, seed=2)
    query = torch.randn(37, 6)
    a = weighted_knn_scores(train_x, train_y, query, 4, k=5, chunk_size=1024)
    b = weighted_knn_scores(train_x, train_y, query, 4, k=5, chunk_size=4)
    torch.testing.assert_close(a, b)


def test_bad_input_is_refused():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match='labels must lie'):
        weighted_knn_scores(x, y, x, num_classes=3)
    with pytest.raises(ValueError, match='dimension'):
        weighted_knn_scores(x, y, torch.randn(2, 5), num_classes=4)
    with pytest.raises(ValueError, match='empty'):
        weighted_knn_scores(x[:0], y[:0], x, num_classes=4)
    with pytest.raises(ValueError, match='temperature'):
        weighted_knn_scores(x, y, x, num_classes=4, temperature=0)
