"""StrictLoadImageFromFile(skip_unreadable=True): skipped files are logged, counted across
dataloader workers, reported at the end of training, and limited by max_skipped."""
import glob
import multiprocessing
import os
import os.path as osp
import re
import sys

import pytest

from revisit_ssl.datasets.transforms.strict_load_image import (
    StrictLoadImageFromFile, TooManyUnreadableImagesError, UnreadableImageError)
from warm_python import run_warm  # tests/helpers, on sys.path through tests/conftest.py

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# 15 good + 1 corrupt demo image at batch 8 = 2 iterations and every file drawn per epoch
SMALL = [
    'train_cfg.max_epochs=1',
    'train_dataloader.batch_size=8',
    'train_dataloader.persistent_workers=False',
    'model.head.queue_len=64',
    'model.head.knn_k=4',
    'model.knn_warmup_epochs=1',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.logger.interval=1',
]


@pytest.fixture
def corrupt_demo(tmp_path):
    """15 demo images and one corrupt JPEG (a good file cut in half)."""
    from revisit_ssl.utils.demo_data import make_demo_data
    root = tmp_path / 'demo'
    make_demo_data(str(root), formats=('cls', ), num_train=15, num_val=6, seed=0)
    good = sorted(glob.glob(str(root / 'train' / '*' / '*.jpg')))
    data = open(good[0], 'rb').read()
    bad = root / 'train' / 'circle' / 'corrupt.jpg'
    bad.write_bytes(data[:len(data) // 2])
    return dict(root=str(root), bad=str(bad), good=good)


def train(tmp_path, root, *options, hooks=True):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f"_base_ = ['{ROOT}/configs/knn_moco_demo.py']\n" + (
        "custom_hooks = [dict(type='SkippedImageReportHook')]\n"
        if hooks else 'custom_hooks = []\n'))
    work_dir = str(tmp_path / 'work')
    # forked from the warm interpreter (tests/helpers/warm_python.py): as a subprocess
    proc = run_warm(
        [sys.executable, 'tools/train.py', str(cfg), '--work-dir', work_dir,
         '--cfg-options', f'train_dataloader.dataset.data_root={root}', *SMALL,
         *options],
        cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1'))
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    return proc, (open(logs[0]).read() if logs else '')


# ------------------------------------------------------------------ the transform alone
def test_default_still_raises_naming_the_file(corrupt_demo):
    with pytest.raises(UnreadableImageError, match='corrupt.jpg'):
        StrictLoadImageFromFile()(dict(img_path=corrupt_demo['bad']))


def test_skip_counts_distinct_files_and_stops_above_max(corrupt_demo, tmp_path):
    load = StrictLoadImageFromFile(skip_unreadable=True, max_skipped=2)
    assert load(dict(img_path=corrupt_demo['good'][0]))['img'].ndim == 3
    assert load(dict(img_path=corrupt_demo['bad'])) is None
    assert load(dict(img_path=corrupt_demo['bad'])) is None  # the same file: not a new one
    assert load(dict(img_path=str(tmp_path / 'gone.jpg'))) is None  # missing: skipped too
    assert (load.skipped.num_distinct, load.skipped.num_events) == (2, 3)
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(TooManyUnreadableImagesError) as info:
        load(dict(img_path=str(empty)))
    assert 'max_skipped=2' in str(info.value) and 'empty.jpg' in str(info.value)


def _skip_in_child(load, paths):
    for path in paths:
        load(dict(img_path=path))


def test_counts_are_shared_by_worker_processes(corrupt_demo, tmp_path):
    """What dataloader workers do: forked processes skip files, the parent sees the totals."""
    load = StrictLoadImageFromFile(skip_unreadable=True, max_skipped=50)
    missing = [str(tmp_path / f'gone_{i}.jpg') for i in range(6)]
    ctx = multiprocessing.get_context('fork')
    children = [
        ctx.Process(target=_skip_in_child, args=(load, missing[i::3] + [corrupt_demo['bad']]))
        for i in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    # 6 missing files + the corrupt one met by all 3 children
    assert load.skipped.num_distinct == 7
    assert load.skipped.num_events == 9


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='ignore_empty=False'):
        StrictLoadImageFromFile(skip_unreadable=True, ignore_empty=True)
    with pytest.raises(ValueError, match='max_skipped'):
        StrictLoadImageFromFile(skip_unreadable=True, max_skipped=-1)


# ------------------------------------------------------------------- training runs
def test_training_skips_the_corrupt_file_and_reports_it(corrupt_demo, tmp_path):
    proc, log = train(tmp_path, corrupt_demo['root'], 'train_dataloader.num_workers=2',
                      'train_dataloader.dataset.pipeline.0.skip_unreadable=True')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the worker's warning names the file and the reason, in the run's log file
    assert f'Skipped unreadable image {corrupt_demo["bad"]}: cannot decode' in log
    assert 'Epoch(train) [1][2/2]' in log
    # refetching a random other sample can draw the corrupt file again: >= 1 skip, 1 file
    end = re.search(r'Unreadable images, end of training: (\d+) skip\(s\) in total; '
                    r'1 distinct file\(s\) skipped in this run \(max_skipped 100\)', log)
    assert end and int(end.group(1)) >= 1, log[-2000:]
    assert re.search(r'Unreadable images: \d+ skip\(s\) in epoch 1; 1 distinct', log)


def test_training_without_the_option_fails_naming_the_file(corrupt_demo, tmp_path):
    proc, _ = train(tmp_path, corrupt_demo['root'], 'train_dataloader.num_workers=0',
                    hooks=False)
    assert proc.returncode != 0
    assert 'UnreadableImageError' in proc.stderr
    assert f'Cannot decode image file {corrupt_demo["bad"]}' in proc.stderr
    assert 'skip_unreadable=True' in proc.stderr  # the message names the opt-in


def test_training_stops_above_max_skipped(corrupt_demo, tmp_path):
    # 3 corrupt files instead of 2 good ones (16 files, all drawn); at most 1 may be skipped
    for i, good in enumerate(corrupt_demo['good'][-2:]):
        os.remove(good)
        with open(corrupt_demo['bad'], 'rb') as f:
            (tmp_path / 'demo' / 'train' / 'square' / f'corrupt_{i}.jpg').write_bytes(f.read())
    proc, _ = train(tmp_path, corrupt_demo['root'], 'train_dataloader.num_workers=2',
                    'train_dataloader.dataset.pipeline.0.skip_unreadable=True',
                    'train_dataloader.dataset.pipeline.0.max_skipped=1')
    assert proc.returncode != 0
    assert 'TooManyUnreadableImagesError' in proc.stderr
    assert 'More than max_skipped=1 distinct unreadable image files' in proc.stderr
