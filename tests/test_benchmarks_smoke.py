"""Smoke tests of benchmarks/: the scripts run with tiny settings and print their ratio lines.

No timing is asserted: only that every variant was measured and the lines parse.
"""
import importlib.util
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_script(name, *args):
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'benchmarks', name), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def load_queue_precision():
    spec = importlib.util.spec_from_file_location(
        'queue_precision', osp.join(ROOT, 'benchmarks', 'queue_precision.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_prints_all_variants_and_ratios():
    out = run_script('train_step.py', '--batch', '4', '--size', '32', '--small-size', '16',
                     '--queue-len', '64', '--warmup-steps', '1', '--steps', '1',
                     '--rounds', '2', '--search-repeats', '0')
    for label in ('mmpretrain MoCo', 'KNNMoCo NN off', 'KNNMoCo NN on ',
                  'KNNMoCo NN on + 2+4 crops'):
        line = next(l for l in out.splitlines() if l.startswith(label))
        median = float(line[32:].split()[0])
        assert median > 0, line
    ratios = dict(re.findall(r'^ratio (\w+/\w+) = ([0-9.]+)', out, flags=re.M))
    assert set(ratios) == {'nn_off/moco', 'nn_on/nn_off', 'nn_on_mc/nn_on'}
    assert all(float(r) > 0 for r in ratios.values())
    assert 'target <= 1.02' in out and 'target <= 1.10' in out


def test_queue_precision_prints_agreement_per_dtype():
    out = run_script('queue_precision.py', '--features', 'clustered,random',
                     '--queue-len', '256', '--num-queries', '16', '--k', '5',
                     '--native-rows', '2', '--no-timing')
    for dtype, mib in (('float32', 512), ('float16', 256), ('bfloat16', 256)):
        assert re.search(rf'^{dtype}\s+as implemented\s+{mib}\b', out, flags=re.M), out
    rows = re.findall(r'^(float16|bfloat16)\s+(as implemented \(emulated\)|storage only)'
                      r'\s+([0-9.]+)\s+([0-9.]+)', out, flags=re.M)
    assert len(rows) == 2 * 2 * 2  # 2 sets x 2 dtypes x 2 searches
    for _, _, overlap, identical in rows:
        assert 0 <= float(identical) <= float(overlap) <= 100


def test_agreement_metric_against_hand_computed_values():
    qp = load_queue_precision()
    sims = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5],
                         [0.1, 0.2, 0.3, 0.4, 0.5]])
    ref = sims.topk(3, dim=1).indices  # rows: {0,1,2}, {4,3,2}
    got = torch.tensor([[1, 0, 3],      # swaps neighbour 2 (0.7) for 3 (0.6): deficit 0.1
                        [2, 4, 3]])     # same set, other order: no deficit
    a = qp.agreement(ref, got, sims)
    assert a['overlap'] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert a['identical'] == pytest.approx(50.0)
    assert a['deficit_max'] == pytest.approx(0.1)
    assert a['deficit_median'] == pytest.approx(0.0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_emulated_search_rounds_like_the_storage_dtype(dtype):
    """Emulated similarities equal the rounded float32 product of rounded operands."""
    qp = load_queue_precision()
    g = torch.Generator().manual_seed(0)
    queries, queue = qp.clustered_set(64, 300, 7, g, num_clusters=5)
    queue_half = queue.to(dtype)
    got = qp.search_emulated(queries, queue_half, 4)
    sims = (queries.to(dtype).double() @ queue_half.double()).to(dtype)
    # ties in the rounded values may be broken either way: compare the selected values
    assert torch.equal(sims.gather(1, got), sims.topk(4, dim=1).values)
    assert qp.agreement(got, got, sims.float())['overlap'] == 100


def test_pipeline_throughput_release_mode_prints_both_rates_and_the_ratio():
    out = run_script('pipeline_throughput.py', '--num-images', '3', '--rounds', '2')
    rates = dict(re.findall(r'^(fast \(config\)|release-style)\s+([0-9.]+)', out, flags=re.M))
    assert set(rates) == {'fast (config)', 'release-style'}, out
    assert all(float(r) > 0 for r in rates.values())
    (ratio, ) = re.findall(r'^ratio fast/release = ([0-9.]+) \(median', out, flags=re.M)
    assert float(ratio) > 0 and 'target >= 1.5' in out


def test_pipeline_throughput_memory_and_decode_modes():
    out = run_script('pipeline_throughput.py', '--mode', 'memory', '--num-images', '3',
                     '--memory-images', '40')
    growth = re.search(r'^RSS after warm-up ([0-9.]+) MiB, at the end ([0-9.]+) MiB, '
                       r'growth ([-+0-9.]+) MiB', out, flags=re.M)
    assert growth and float(growth.group(1)) > 10, out
    out = run_script('pipeline_throughput.py', '--mode', 'decode', '--num-images', '3',
                     '--rounds', '2')
    assert re.search(r'^cv2.imdecode\s+[0-9.]+ ms/image', out, flags=re.M), out
    assert re.search(r'PIL convert\(RGB\) \(the release\)\s+-> 32x64 \(as stored\)', out), out
