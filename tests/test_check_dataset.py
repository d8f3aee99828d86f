"""tools/check_dataset.py: every training image decoded once, bad files listed, exit status."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'knn_moco_demo.py')  # large crops 32 px


def check_tool():
    name = '_check_dataset_tool'
    if name not in sys.modules:  # registered: the decoding pool pickles its functions by name
        spec = importlib.util.spec_from_file_location(
            name, osp.join(ROOT, 'tools', 'check_dataset.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def demo(root, num_train=10) -> list:
    from revisit_ssl.utils.demo_data import make_demo_data
    make_demo_data(str(root), formats=('cls', ), num_train=num_train, num_val=6, seed=0)
    return sorted(
        osp.join(d, f) for d, _, fs in os.walk(root / 'train') for f in fs)


def plant_bad_files(root) -> dict:
    """One file of each kind the tool must find, next to good demo images."""
    good = demo(root)
    with open(good[0], 'rb') as f:
        jpeg = f.read()
    planted = dict(
        truncated=root / 'train' / 'circle' / 'truncated.jpg',
        empty=root / 'train' / 'square' / 'empty.jpg',
        grey=root / 'train' / 'ring' / 'grey.png',  # one channel
        grey_rgb=root / 'train' / 'ring' / 'grey_rgb.png',  # 3 channels, R == G == B
        tiny=root / 'train' / 'star' / 'tiny.png')
    planted['truncated'].write_bytes(jpeg[:len(jpeg) // 2])
    planted['empty'].write_bytes(b'')
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (40, 50), dtype=np.uint8)
    cv2.imwrite(str(planted['grey']), grey)
    cv2.imwrite(str(planted['grey_rgb']), np.stack([grey] * 3, -1))
    cv2.imwrite(str(planted['tiny']), rng.integers(0, 255, (4, 4, 3), dtype=np.uint8))
    return {k: str(v) for k, v in planted.items()}


def run(tmp_path, root, *extra):
    out = str(tmp_path / 'findings.json')
    code = check_tool().main([
        CONFIG, '--out', out, *extra, '--cfg-options',
        f'train_dataloader.dataset.data_root={root}'
    ])
    with open(out) as f:
        return code, json.load(f)


def paths(found, name):
    return sorted(e['path'] for e in found[name])


def test_planted_files_are_found_in_parallel(tmp_path, capsys):
    root = tmp_path / 'demo'
    planted = plant_bad_files(root)
    code, found = run(tmp_path, root, '--workers', '2')
    assert code == 1  # unreadable files: errors
    assert found['num_files'] == 10 + 5
    assert paths(found, 'unreadable') == [planted['truncated']]
    assert paths(found, 'empty') == [planted['empty']]
    assert paths(found, 'missing') == []
    assert paths(found, 'grey') == sorted([planted['grey'], planted['grey_rgb']])
    # the config's ConstrainedMultiCrop.large_size (32) is the default threshold
    assert found['min_size'] == 32
    assert paths(found, 'tiny') == [planted['tiny']]
    out = capsys.readouterr()
    assert ('Summary: 15 image files checked, 13 decoded, 1 unreadable, 1 empty, 0 missing, '
            '2 grey, 1 tiny') in out.out
    assert f'  {planted["truncated"]}  (cannot decode' in out.out
    assert "tiny (shorter side < 32 px, the config's ConstrainedMultiCrop.large_size)" in out.out
    assert 'FAILED' in out.out
    # mmengine's progress bar counts every file
    assert '15/15' in out.err


def test_warnings_only_exit_zero_and_min_size_flag(tmp_path, capsys):
    root = tmp_path / 'demo'
    planted = plant_bad_files(root)
    os.remove(planted['truncated'])
    os.remove(planted['empty'])
    code, found = run(tmp_path, root, '--workers', '1', '--min-size', '0')
    assert code == 0  # grey images are warnings
    assert found['tiny'] == [] and len(found['grey']) == 2
    assert 'tiny check off' in capsys.readouterr().out
    # demo images are 96-160 px: a 128 px threshold flags some of them, and the small files
    code, found = run(tmp_path, root, '--workers', '2', '--min-size', '128')
    assert code == 0
    sizes = {e['path']: min(e['height'], e['width']) for e in found['tiny']}
    assert planted['tiny'] in sizes and all(s < 128 for s in sizes.values())
    files = [osp.join(d, f) for d, _, fs in os.walk(root / 'train') for f in fs]
    small = [p for p in files if min(cv2.imread(p).shape[:2]) < 128]
    assert 3 < len(small) < len(files)  # the 40x50 grey ones, the 4x4, some demo images
    assert sorted(sizes) == sorted(small)


def test_annotation_file_lists_missing_files(tmp_path):
    """A dataset built from an annotation file: entries without a file are errors."""
    root = tmp_path / 'demo'
    good = demo(root)
    ann = tmp_path / 'train.txt'
    rel = [osp.relpath(p, root / 'train') for p in good[:4]] + ['gone/missing.jpg']
    ann.write_text('\n'.join(rel) + '\n')
    out = str(tmp_path / 'f.json')
    code = check_tool().main([
        CONFIG, '--workers', '1', '--out', out, '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.ann_file={ann}'
    ])
    with open(out) as f:
        found = json.load(f)
    assert code == 1
    assert found['num_files'] == 5
    assert paths(found, 'missing') == [str(root / 'train' / 'gone' / 'missing.jpg')]


def test_decoder_settings_come_from_the_config():
    tool = check_tool()
    dataset = dict(
        type='UniformSubsetDataset',
        dataset=dict(
            type='CustomDataset',
            pipeline=[
                dict(type='LoadImageFromFile', imdecode_backend='pillow',
                     to_float32=True),
                dict(type='RandomResizedCrop', scale=(48, 64)),
            ]))
    assert tool.loader_config(dataset) == dict(
        type='StrictLoadImageFromFile', imdecode_backend='pillow')
    assert tool.default_min_size(dataset) == (48, 'RandomResizedCrop.scale')
    emptied = tool._without_pipelines(dataset)
    assert emptied['dataset']['pipeline'] == [] and len(
        dataset['dataset']['pipeline']) == 2


def test_clean_folder_passes_and_cli_exit_status(tmp_path, capsys):
    root = tmp_path / 'demo'
    demo(root)
    code, found = run(tmp_path, root, '--workers', '2')
    assert code == 0
    assert ('Summary: 10 image files checked, 10 decoded, 0 unreadable, 0 empty, '
            '0 missing, 0 grey, 0 tiny') in capsys.readouterr().out
    # the command line: exit status 1 with a file that does not decode
    (root / 'train' / 'circle' / 'broken.jpg').write_bytes(b'not a jpeg')
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, 'tools/check_dataset.py', CONFIG, '--workers', '1',
        '--cfg-options', f'train_dataloader.dataset.data_root={root}'
    ], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'broken.jpg' in proc.stdout and ', 1 unreadable,' in proc.stdout


@pytest.mark.parametrize('workers', ['0', '-1'])
def test_bad_worker_count(tmp_path, workers, capsys):
    root = tmp_path / 'demo'
    demo(root, num_train=2)
    assert check_tool().main([
        CONFIG, '--workers', workers, '--cfg-options',
        f'train_dataloader.dataset.data_root={root}'
    ]) == 2
    assert '--workers must be >= 1' in capsys.readouterr().err
