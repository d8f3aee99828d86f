"""``plot_curves.py --x hours`` (the paper's Figure 5, training time vs performance) on
constructed mmengine ``scalars.json`` logs."""
import csv
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def plot_curves():
    spec = importlib.util.spec_from_file_location(
        '_plot_curves_hours', osp.join(ROOT, 'tools', 'analysis', 'plot_curves.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_log(work_dir, records, run='20260101_000000'):
    folder = osp.join(work_dir, run, 'vis_data')
    os.makedirs(folder)
    with open(osp.join(folder, 'scalars.json'), 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in records))


def test_hours_are_the_cumulative_sum_of_logged_times(tmp_path):
    rng = np.random.default_rng(0)
    times = rng.uniform(100, 900, 12)  # seconds per iteration, logged every iteration
    records = [dict(knn_top1_k20=10.0, step=0)]
    for step, t in enumerate(times, 1):
        records.append(dict(lr=0.1, loss=5.0 - step * 0.1, time=float(t),
                            data_time=0.01, step=step))
        if step % 4 == 0:
            records.append(dict(knn_top1_k20=10.0 + step, step=step))
    write_log(str(tmp_path), records)
    out = str(tmp_path / 'hours.png')
    result = plot_curves().main([str(tmp_path), '--x', 'hours', '--out', out])
    expected = np.cumsum(times) / 3600
    np.testing.assert_allclose(result['x_values']['loss'], expected, rtol=1e-12)
    # evaluations take the training hours at their step; step 0 is 0 hours
    np.testing.assert_allclose(result['x_values']['knn_top1_k20'],
                               [0.0, expected[3], expected[7], expected[11]],
                               rtol=1e-12)
    assert cv2.imread(out) is not None
    with open(result['csv']) as f:
        rows = list(csv.DictReader(f))
    loss_rows = [r for r in rows if r['series'] == 'loss']
    assert [int(r['step']) for r in loss_rows] == list(range(1, 13))
    np.testing.assert_allclose([float(r['hours']) for r in loss_rows], expected)
    # the iteration axis is unchanged
    plain = plot_curves().main([str(tmp_path), '--out', str(tmp_path / 'it.png')])
    assert plain['x_values']['loss'] == list(range(1, 13))


def test_hours_count_every_iteration_between_sparse_records(tmp_path):
    """LoggerHook(interval=5): each record's mean time stands for the 5 iterations since the
    previous record; a resumed run's repeated step is replaced, not counted twice."""
    steps, times = [5, 10, 15], [2.0, 3.0, 4.0]
    write_log(str(tmp_path), [
        dict(lr=0.1, loss=1.0, time=t, step=s) for s, t in zip(steps[:2], times[:2])
    ])
    write_log(str(tmp_path), [
        dict(lr=0.1, loss=1.0, time=t, step=s) for s, t in zip(steps[1:], times[1:])
    ], run='20260101_010000')
    result = plot_curves().main([str(tmp_path), '--x', 'hours', '--out',
                                 str(tmp_path / 'h.png')])
    np.testing.assert_allclose(result['x_values']['loss'],
                               np.cumsum([5 * 2.0, 5 * 3.0, 5 * 4.0]) / 3600)


def test_hours_without_logged_times_names_the_flag(tmp_path):
    write_log(str(tmp_path), [dict(lr=0.1, loss=1.0, step=1)])
    with pytest.raises(ValueError, match='--x'):
        plot_curves().main([str(tmp_path), '--x', 'hours', '--out',
                            str(tmp_path / 'h.png')])
