"""revisit_ssl.utils.quiet_warnings: third-party warnings silenced at their source, only there."""
import os
import os.path as osp
import re
import subprocess
import sys
import warnings

import pytest

from revisit_ssl.utils.quiet_warnings import QUIET_WARNINGS, silence_known_warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG_RESOURCES = 'pkg_resources is deprecated as an API'
ALPHA = "Only use 'alpha' for pillow backend"

# what raises each warning: mmengine's is_installed (Config.fromfile of a `pkg::` base config
# calls it) and mmcv's Pillow saturation step (HueSafeColorJitter)
TRIGGER = """
import numpy as np
{first}
from mmengine.utils import is_installed
import mmcv
assert is_installed('mmpretrain') and is_installed('mmengine')
mmcv.adjust_color(np.zeros((4, 4, 3), np.uint8), alpha=0.5, backend='pillow')
print('ran')
"""


def stderr_of(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    env['OMP_NUM_THREADS'] = '1'
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_triggers_warn_without_revisit_ssl_and_not_with_it():
    plain = stderr_of([sys.executable, '-c', TRIGGER.format(first='')])
    assert 'ran' in plain.stdout
    # the sources are what the filters name (so the quiet runs below are not vacuous)
    assert PKG_RESOURCES in plain.stderr and ALPHA in plain.stderr
    assert 'mmengine/utils/package_utils.py' in plain.stderr
    assert 'importlib/__init__.py' in plain.stderr  # importlib.reload(pkg_resources)
    assert 'mmcv/image/photometric.py' in plain.stderr

    quiet = stderr_of([sys.executable, '-c', TRIGGER.format(first='import revisit_ssl')])
    assert 'ran' in quiet.stdout
    assert PKG_RESOURCES not in quiet.stderr and ALPHA not in quiet.stderr, quiet.stderr


@pytest.mark.parametrize('message, category, source', [
    (message, category, module) for message, category, modules in QUIET_WARNINGS
    for module in modules
])
def test_filters_match_only_their_source(message, category, source):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        silence_known_warnings()
        silence_known_warnings()  # idempotent: one filter per warning
        warnings.warn_explicit(message, category, 'x.py', 1, module=source)
        assert caught == []
        # the same text from our code or another package, a different text from the same
        # module and another category all still show
        warnings.warn_explicit(message, category, 'x.py', 1, module='revisit_ssl.tool')
        warnings.warn_explicit(message, category, 'x.py', 1, module=f'other_{source}')
        warnings.warn_explicit('something else', category, 'x.py', 1, module=source)
        warnings.warn_explicit(message, DeprecationWarning, 'x.py', 1, module=source)
        assert len(caught) == 4
        ours = [f for f in warnings.filters
                if f[1] is not None and f[1].pattern == re.escape(message)]
        assert len(ours) == 1


def test_train_tool_with_dataloader_workers_prints_none_of_them(demo_root, tmp_path):
    # 16 images, batch 8, 2 workers that fork from the tool: the colour jitter's Pillow
    # saturation step runs in the workers
    result = stderr_of([
        sys.executable, 'tools/train.py', 'configs/knn_moco_demo.py', '--work-dir',
        str(tmp_path), '--cfg-options', f'train_dataloader.dataset.data_root={demo_root}',
        'train_cfg.max_epochs=1', 'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=2', 'train_dataloader.dataset.indices=16',
        'model.head.queue_len=64', 'model.head.knn_k=4', 'custom_hooks=[]'
    ])
    assert 'Epoch(train) [1][2/2]' in result.stdout  # both iterations ran
    for text in (PKG_RESOURCES, ALPHA):
        assert text not in result.stderr, result.stderr
