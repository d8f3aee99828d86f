"""A regular install (``pip install .``, a wheel) ships the configs, and a config outside any
clone inherits the main recipe through ``revisit_ssl::`` (README, "Configs from an installed
package").

The wheel is built from a copy of the clone (so the build folder stays out of the working
tree), installed with ``--target`` into a temporary folder, and used from another temporary
folder by an interpreter that sees only that folder plus the environment's site-packages for
the dependencies (``-S``: no ``.pth`` files, so not the editable install of this clone).
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LEAF = """_base_ = 'revisit_ssl::_base_/../knn_moco_coco.py'
model = dict(head=dict(knn_k=10))
"""

USE = r'''
import os.path as osp, sys
import revisit_ssl
assert revisit_ssl.__file__.startswith(sys.argv[1]), revisit_ssl.__file__
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

leaf = Config.fromfile('leaf.py')
recipe = Config.fromfile(sys.argv[2])  # the clone's main recipe, inherited by path


def plain(obj):
    """The resolved values without mmengine's `_scope_` marks of a package base."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


got, want = plain(leaf.to_dict()), plain(recipe.to_dict())
assert got['model']['head'].pop('knn_k') == 10 and want['model']['head'].pop('knn_k') == 20
for key in set(got) | set(want):
    assert got.get(key) == want.get(key), key
assert leaf.model._scope_ == 'revisit_ssl'
# build through the `revisit_ssl` scope (revisit_ssl/registry.py): model and view pipeline
init_default_scope(leaf.default_scope)
leaf.model.backbone.update(depth=18)
leaf.model.neck.in_channels = leaf.model.head.backbone_dim = 512
model = MODELS.build(leaf.model)
pipeline = Compose(leaf.train_dataloader.dataset.pipeline)
print('OK', type(model).__name__, len(pipeline.transforms))
'''


def copy_clone(dst):
    for name in ('setup.py', 'MANIFEST.in', 'README.md', 'requirements.txt'):
        shutil.copy(osp.join(ROOT, name), dst)
    for name in ('revisit_ssl', 'configs', 'tools', 'requirements'):
        shutil.copytree(osp.join(ROOT, name), osp.join(dst, name),
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info'))


def pip(*args, cwd):
    out = subprocess.run([sys.executable, '-m', 'pip', *args, '-q', '--disable-pip-version-check'],
                         cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_wheel_ships_configs_and_an_outside_config_inherits_the_recipe(tmp_path):
    src, site, user = tmp_path / 'src', tmp_path / 'site', tmp_path / 'user'
    os.makedirs(src)
    os.makedirs(user)
    copy_clone(str(src))
    pip('wheel', str(src), '--no-deps', '--no-build-isolation', '-w', str(tmp_path / 'wheels'),
        cwd=str(tmp_path))
    (wheel, ) = glob.glob(str(tmp_path / 'wheels' / 'revisit_ssl-*.whl'))

    # every config and tool of the clone is in the wheel, under revisit_ssl/.mim/
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ('configs', 'tools'):
        files = {osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, folder, '**', '*'),
                                                          recursive=True)
                 if osp.isfile(p) and '__pycache__' not in p}
        shipped = {n[len('revisit_ssl/.mim/'):] for n in names
                   if n.startswith(f'revisit_ssl/.mim/{folder}/')}
        assert shipped == files, folder
    assert 'revisit_ssl/.mim/model-index.yml' in names
    assert not [n for n in names if n.startswith(('tests/', 'configs/', 'tools/'))]

    pip('install', '--no-deps', '--target', str(site), wheel, cwd=str(tmp_path))
    (user / 'leaf.py').write_text(LEAF)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site), sysconfig.get_paths()['purelib']]))
    out = subprocess.run(
        [sys.executable, '-S', '-c', USE, str(site), osp.join(ROOT, 'configs', 'knn_moco_coco.py')],
        cwd=str(user), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[:2] == ['OK', 'KNNMoCo'], out.stdout
    # the `revisit_ssl` scope resolves: no fallback to mmengine's root registries
    assert 'Failed to' not in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
