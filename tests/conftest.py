"""Shared fixtures: small demo data and short demo runs, made once per test session."""
import os
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HELPERS = osp.join(ROOT, 'tests', 'helpers')
for path in (ROOT, HELPERS):
    if path not in sys.path:
        sys.path.insert(0, path)

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


# Short demo pretraining runs read by several files (tests/helpers/demo_runs.py): each is
# trained once per session instead of once per test that needs it.


@pytest.fixture(scope='session')
def demo_straight_run(demo_root, tmp_path_factory):
    """2 epochs in one go: ``epoch_1.pth``, ``epoch_2.pth`` and the run's output."""
    import demo_runs
    return demo_runs.straight_run(demo_root, str(tmp_path_factory.mktemp('straight')))


@pytest.fixture(scope='session')
def demo_stopped_run(demo_root, tmp_path_factory):
    """1 epoch, then the run stops: ``epoch_1.pth`` and its output."""
    import demo_runs
    return demo_runs.stopped_run(demo_root, str(tmp_path_factory.mktemp('stopped')))


@pytest.fixture(scope='session')
def demo_resumed_run(demo_root, demo_stopped_run, tmp_path_factory):
    """``demo_stopped_run`` continued with ``--resume`` to 2 epochs (in a copy)."""
    import demo_runs
    return demo_runs.resumed_run(demo_root, demo_stopped_run,
                                 str(tmp_path_factory.mktemp('resumed') / 'work'))


@pytest.fixture(scope='session')
def fake_bin(tmp_path_factory) -> str:
    """A PATH folder with a ``python`` that is not the project's, ``srun`` and ``scontrol``."""
    import demo_runs
    return demo_runs.make_fake_bin(str(tmp_path_factory.mktemp('bin')))


@pytest.fixture(scope='session')
def demo_dist_run(demo_root, fake_bin, tmp_path_factory):
    """``tools/dist_train.sh CONFIG 2`` (one node, 2 CPU processes), 2 epochs."""
    import demo_runs
    return demo_runs.dist_run(demo_root, fake_bin, str(tmp_path_factory.mktemp('one_node')))


def pytest_sessionfinish(session, exitstatus):
    import warm_python
    warm_python.close()


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
