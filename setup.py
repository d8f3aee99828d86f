"""Installer for revisit-ssl (import name ``revisit_ssl``).

Like the OpenMMLab packages (mmpretrain's ``add_mim_extension``), a regular install ships the
configs and tools inside the package, under ``revisit_ssl/.mim/``, so that a config anywhere can
inherit ``'revisit_ssl::_base_/../knn_moco_coco.py'`` (see README "Configs from an installed
package") and ``mim train revisit_ssl ...`` finds ``.mim/tools/train.py``. Unlike
``add_mim_extension`` the copy goes into the build folder, not the source tree, so building a
wheel leaves the clone unchanged; an editable install needs no copy (configs are inherited from
the clone by path).
"""
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

here = osp.dirname(osp.abspath(__file__))

#: Folders of the repository shipped under ``revisit_ssl/.mim/`` (mm* packages ship the same two)
MIM_FOLDERS = ('configs', 'tools')

#: ``.mim/model-index.yml``: mmengine's ``Config`` reads it before resolving any ``pkg::`` base
#: (``mmengine.config.utils._get_cfg_metainfo``) and fails without it. Our configs have no
#: metafiles (no released weights), so it imports none and mmengine falls back to the plain
#: ``.mim/configs/<path>``.
MODEL_INDEX = 'Import: []\n'


def get_version() -> str:
    scope = {}
    with open(osp.join(here, 'revisit_ssl', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read a requirements file, following ``-r`` includes."""
    reqs = []
    with open(fname) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                reqs.append(line)
    return reqs


class BuildPyWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_FOLDERS` into ``revisit_ssl/.mim/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # an editable install reads the clone itself
        for name in MIM_FOLDERS:
            src = osp.join(here, name)
            if not osp.isdir(src):  # an sdist without them would silently ship no configs
                raise FileNotFoundError(
                    f'{src} is missing: build from a clone or from an sdist made by '
                    '`python -m build --sdist` (MANIFEST.in lists the folders)')
            dst = osp.join(self.build_lib, 'revisit_ssl', '.mim', name)
            if osp.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(
                src, dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            self.announce(f'copied {name}/ to {osp.relpath(dst, self.build_lib)}', 2)
        with open(osp.join(self.build_lib, 'revisit_ssl', '.mim', 'model-index.yml'),
                  'w') as f:
            f.write(MODEL_INDEX)


setup(
    name='revisit-ssl',
    version=get_version(),
    description='kNN-MoCo (Revisiting Contrastive Methods for Unsupervised '
    'Learning of Visual Representations) for MMPretrain, MMSegmentation '
    'and MMDetection',
    long_description=open(osp.join(here, 'README.md')).read()
    if osp.exists(osp.join(here, 'README.md')) else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    cmdclass={'build_py': BuildPyWithMim},
    install_requires=parse_requirements(
        osp.join(here, 'requirements', 'runtime.txt')) + ['mmcv==2.1.0'],
    extras_require={
        'tests': parse_requirements(
            osp.join(here, 'requirements', 'tests.txt')),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
