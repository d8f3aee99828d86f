"""Shared fixtures: small demo data generated once per test session."""
import os
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import revisit_ssl  # noqa: E402,F401  registers components and safe globals


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory) -> str:
    """A small demo dataset (classification folders) shared by all tests.

    Tests that need other layouts call ``make_demo_data`` themselves with ``formats=...``.
    """
    from revisit_ssl.utils.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, formats=('cls', ), num_train=48, num_val=24, seed=0)
    return root


@pytest.fixture
def project_root() -> str:
    return ROOT


def pytest_configure(config):
    # Keep mmengine from spreading work over threads the 2-core CI machine does not have.
    os.environ.setdefault('OMP_NUM_THREADS', '2')


@pytest.fixture(autouse=True)
def _isolate_default_scope():
    """Restore mmengine's default-scope stack after each test.

    Building a Runner (or ``init_default_scope``) leaves its scope as the current one, and
    registries then resolve ``type=`` names in that package only (e.g. 'mmdet' after a
    detection test). Each test starts from the scope state the session had before it.
    """
    from mmengine.registry import DefaultScope
    before = list(DefaultScope._instance_dict.items())
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)
