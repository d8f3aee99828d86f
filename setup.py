"""Installer for revisit-ssl (import name ``revisit_ssl``)."""
import os.path as osp

from setuptools import find_packages, setup


def get_version() -> str:
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'revisit_ssl', 'version.py')) as f:
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


here = osp.dirname(osp.abspath(__file__))
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
    install_requires=parse_requirements(
        osp.join(here, 'requirements', 'runtime.txt')) + ['mmcv==2.1.0'],
    extras_require={
        'tests': parse_requirements(
            osp.join(here, 'requirements', 'tests.txt')),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
