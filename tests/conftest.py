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
