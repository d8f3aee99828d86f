"""Progress of the long loops: one line per L2 strength (linear probe), one per class (VOC07
probe, VOC SVM), none with progress off (the tools' --no-progress); every bar on stderr."""
import glob
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest

from revisit_ssl.evaluation import (logistic_probe, select_l2_strength,
                                    voc_logistic_probe, voc_svm_benchmark)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def blobs(n=60, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + 2 * np.eye(classes, d)[y], y


def multilabel(n=40, d=6, classes=4, seed=0):
    """Targets of ``classes`` classes; the last one has no positive (no fit, still a line)."""
    rng = np.random.default_rng(seed)
    targets = rng.random((n, classes)) < 0.4
    targets[:, -1] = False
    x = rng.normal(size=(n, d)) + targets @ rng.normal(size=(classes, d))
    return x, targets


def lines(text, what):
    return re.findall(rf'^{what} (\d+)/(\d+): (.*) \((\d+\.\d) s\)$', text, re.M)


def test_l2_sweep_prints_one_line_per_strength(capsys):
    x, y = blobs()
    strengths = [10.0, 1.0, 0.1, 0.01, 0.001]
    sweep = select_l2_strength(x[:40], y[:40], x[40:], y[40:], strengths)
    found = lines(capsys.readouterr().err, 'L2 sweep')
    assert [(int(i), int(n)) for i, n, _, _ in found] == [(i, 5) for i in range(1, 6)]
    # each line carries that fit's lambda and validation accuracy
    for (_, _, text, _), lam, acc in zip(found, strengths, sweep['val_top1']):
        assert text == f'lambda={lam:.3g}, val top-1 {acc:.2f}%'
    select_l2_strength(x[:40], y[:40], x[40:], y[40:], strengths, progress=False)
    assert capsys.readouterr().err == ''


def test_logistic_probe_passes_progress_on(capsys):
    x, y = blobs()
    logistic_probe(x[:45], y[:45], x[45:], y[45:], strengths=[1.0, 0.1, 0.01])
    assert len(lines(capsys.readouterr().err, 'L2 sweep')) == 3
    logistic_probe(x[:45], y[:45], x[45:], y[45:], strengths=[1.0, 0.1], progress=False)
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('bench, what', [(voc_logistic_probe, 'VOC07 probe class'),
                                         (voc_svm_benchmark, 'VOC SVM class')])
def test_voc_benchmarks_print_one_line_per_class(bench, what, capsys):
    x, t = multilabel()
    kwargs = dict(strengths=[1.0, 0.1]) if bench is voc_logistic_probe else dict(
        costs=[0.1, 1.0])
    result = bench(x[:28], t[:28], x[28:], t[28:], **kwargs)
    found = lines(capsys.readouterr().err, what)
    assert [(int(i), int(n)) for i, n, _, _ in found] == [(i, 4) for i in range(1, 5)]
    assert 'skipped' in found[-1][2]  # the class without positives
    for (_, _, text, _), entry in zip(found[:-1], result['per_class']):
        assert text.endswith(f'test AP (area) {entry["ap_area"] * 100:.2f}')
    bench(x[:28], t[:28], x[28:], t[28:], progress=False, **kwargs)
    assert capsys.readouterr().err == ''


def test_linear_probe_tool_prints_the_sweep(demo_root, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        '_progress_linear_probe', osp.join(ROOT, 'tools', 'analysis', 'linear_probe.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = [
        osp.join(ROOT, 'configs', 'knn_moco_demo.py'), 'random', '--data-root', demo_root,
        '--img-size', '32', '--num-l2', '4', '--num-workers', '0', '--out',
        str(tmp_path / 'lp.json')
    ]
    tool.main(args + ['--no-progress'])
    assert lines(capsys.readouterr().err, 'L2 sweep') == []
    tool.main(args)
    assert len(lines(capsys.readouterr().err, 'L2 sweep')) == 4


def test_progress_bar_draws_on_stderr_only(capsys):
    from revisit_ssl.utils import progress_bar
    items = [3, 1, 2]
    assert list(progress_bar(iter(items), 'counting', total=3)) == items
    captured = capsys.readouterr()
    # stdout keeps the tools' result lines; the bar (label, 100%) goes to stderr
    assert captured.out == ''
    assert 'counting' in captured.err and '100%' in captured.err
    plain = iter(items)
    assert progress_bar(plain, 'counting', enabled=False) is plain
    assert capsys.readouterr() == ('', '')


def test_every_tool_bar_goes_through_progress_bar():
    """mmpretrain's ``track`` and a bare rich ``track`` draw on stdout: no tool may use them."""
    offenders = []
    for path in glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True) + glob.glob(
            osp.join(ROOT, 'revisit_ssl', '**', '*.py'), recursive=True):
        if path.endswith(osp.join('utils', 'progress.py')):
            continue
        with open(path) as f:
            text = f.read()
        if re.search(r'from (mmpretrain\.utils|rich\.progress) import .*\btrack\b', text):
            offenders.append(osp.relpath(path, ROOT))
    assert offenders == []


def test_davis_tool_keeps_bars_off_stdout(tmp_path, capsys):
    from revisit_ssl.utils.davis_demo import make_davis_demo
    spec = importlib.util.spec_from_file_location(
        '_progress_davis', osp.join(ROOT, 'tools', 'analysis', 'davis_label_propagation.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    root = str(tmp_path / 'DAVIS')
    make_davis_demo(root)
    config = tmp_path / 'tiny_resnet.py'
    config.write_text("model = dict(backbone=dict(type='mmpretrain.ResNet', depth=18, "
                      'stem_channels=8, base_channels=8))\n')
    tool.main([str(config), 'random', '--davis-root', root, '--out-dir',
               str(tmp_path / 'pred'), '--out', str(tmp_path / 'davis.json'), '--device', 'cpu'])
    captured = capsys.readouterr()
    assert 'propagating' in captured.err
    # stdout: the per-sequence lines and the summary, nothing of the bars
    assert '━' not in captured.out and 'propagating' not in captured.out
    assert re.search(r'^J&F-Mean: \d\.\d{4}$', captured.out, re.M)
