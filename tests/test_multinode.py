"""Launchers: interpreter choice, a 2-node job on one machine, Slurm (fake srun), all equal.

tools/dist_train.sh run as two nodes (NNODES=2, NODE_RANK 0 / 1, one process each, the same
MASTER_ADDR / PORT) and tools/slurm_train.sh with 2 tasks on 2 (fake) nodes must train exactly
what ``dist_train.sh CONFIG 2`` trains on one node: same weights, queues and optimizer state,
bit for bit. Every launch runs with PYTHON unset and a ``python`` on PATH that is not the
project's, so the scripts must find ``.venv/bin/python`` themselves.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

import demo_runs  # tests/helpers, on sys.path through tests/conftest.py
from demo_runs import dist_train, run_on_free_port, write_script

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
VENV_PY = osp.join(ROOT, '.venv', 'bin', 'python')
FAKE_SRUN = osp.join(ROOT, 'tests', 'helpers', 'fake_srun.py')
LAUNCHERS = ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh')
# variables of an outer launcher that must not leak into the runs
LAUNCH_VARS = ('PYTHON', 'NNODES', 'NODE_RANK', 'PORT', 'MASTER_ADDR', 'MASTER_PORT',
               'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'GPUS', 'GPUS_PER_NODE', 'GRES',
               'SRUN_ARGS', 'CPUS_PER_TASK')

needs_venv = pytest.mark.skipif(
    not osp.exists(VENV_PY),
    reason='the launchers default to .venv/bin/python, which this checkout lacks')

# 16 images, 8 per rank on 2 ranks: 1 iteration of global batch 16 per epoch; 2 epochs with a
# 1-epoch warm-up, so the second step uses the NN loss and both steps enqueue. The options of
# tests/conftest.py's ``demo_dist_run``, the one-node reference.
EPOCHS = demo_runs.LAUNCH_EPOCHS
SMALL = demo_runs.LAUNCH_OPTIONS


def launch_env(fake_bin: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCH_VARS and not k.startswith('SLURM_')}
    env.update(PATH=f'{fake_bin}:{os.environ["PATH"]}', OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    env.update(extra)
    return env


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_same_training(ckpt, reference):
    """Weights, buffers (queues, pointers) and optimizer state equal bit for bit."""
    assert ckpt['meta']['iter'] == reference['meta']['iter'] == EPOCHS
    state, ref = ckpt['state_dict'], reference['state_dict']
    assert state.keys() == ref.keys()
    for key in ref:
        assert state[key].dtype == ref[key].dtype and torch.equal(state[key], ref[key]), key
    assert int(state['head.queue_ptr']) == 16 * EPOCHS
    momentum = ckpt['optimizer']['state']
    ref_momentum = reference['optimizer']['state']
    assert momentum.keys() == ref_momentum.keys() and len(ref_momentum) > 0
    for index in ref_momentum:
        for name, value in ref_momentum[index].items():
            assert torch.equal(momentum[index][name], value), (index, name)


@pytest.fixture(scope='module')
def single_node(demo_dist_run):
    """Checkpoint of ``dist_train.sh CONFIG 2``: one node, two CPU processes (conftest.py)."""
    return load(demo_dist_run.path(f'epoch_{EPOCHS}.pth'))


@needs_venv
def test_two_nodes_train_exactly_what_one_node_trains(demo_root, fake_bin, tmp_path,
                                                      single_node):
    # each "node" has its own work dir, as machines without a shared file system would
    work_dirs = [str(tmp_path / f'node{rank}') for rank in range(2)]

    def start(port):
        return [
            dist_train(
                work_dirs[rank], demo_root, 1,
                launch_env(fake_bin, NNODES='2', NODE_RANK=str(rank),
                           MASTER_ADDR='127.0.0.1', PORT=str(port)))
            for rank in range(2)
        ]

    run_on_free_port(start)
    assert_same_training(load(osp.join(work_dirs[0], f'epoch_{EPOCHS}.pth')), single_node)
    # global rank 1 (node 1) saves nothing: only rank 0 writes checkpoints
    assert not [f for f in os.listdir(work_dirs[1]) if f.endswith('.pth')]


@needs_venv
def test_slurm_train_on_two_cpu_nodes_matches_one_node(demo_root, fake_bin, tmp_path,
                                                       single_node):
    work_dir = str(tmp_path / 'slurm')
    log = str(tmp_path / 'srun.json')

    def start(port):
        # no MASTER_ADDR: the master host comes from `scontrol show hostnames`
        env = launch_env(fake_bin, GPUS='2', GPUS_PER_NODE='1', CPUS_PER_TASK='1', GRES='',
                         MASTER_PORT=str(port), FAKE_SRUN_LOG=log)
        return [
            subprocess.Popen(
                ['bash', 'tools/slurm_train.sh', 'cpu', 'knn_moco', 'configs/knn_moco_demo.py',
                 work_dir, *demo_runs.launch_args(demo_root)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)
        ]

    run_on_free_port(start)
    with open(log) as f:
        srun = json.load(f)
    assert srun['options'] == {
        '-p': 'cpu', '--job-name': 'knn_moco', '--ntasks': '2', '--ntasks-per-node': '1',
        '--cpus-per-task': '1', '--kill-on-bad-exit': '1'}  # GRES= drops --gres
    assert srun['command'][:4] == [VENV_PY, '-u', osp.join(ROOT, 'tools', 'train.py'),
                                   'configs/knn_moco_demo.py']
    assert '--launcher=slurm' in srun['command']
    assert_same_training(load(osp.join(work_dir, f'epoch_{EPOCHS}.pth')), single_node)


# ---- which interpreter the launchers run, and what they pass it (no training) ----

RECORDER = '#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "$RECORD"\n'


@pytest.fixture
def project_copy(tmp_path):
    """tools/*.sh in an empty project whose .venv/bin/python records how it was called."""
    project = tmp_path / 'project'
    (project / 'tools').mkdir(parents=True)
    for name in (*LAUNCHERS, 'find_python.sh'):
        shutil.copy(osp.join(ROOT, 'tools', name), project / 'tools' / name)
    (project / '.venv' / 'bin').mkdir(parents=True)
    write_script(str(project / '.venv' / 'bin' / 'python'), RECORDER)
    return project


def launch(project, script, tmp_path, path_python: bool, **env):
    """Run ``project/tools/script``; the recorded argv of the interpreter it started."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    if path_python:
        write_script(str(bin_dir / 'python'), RECORDER)
    write_script(str(bin_dir / 'srun'), f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_SRUN}" "$@"\n')
    record = tmp_path / 'argv.txt'
    full_env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    # no python on PATH unless path_python: only bash's own folders after ours
    full_env.update(PATH=f'{bin_dir}:/usr/bin:/bin', RECORD=str(record), GPUS='1', **env)
    args = {
        'dist_train.sh': ['cfg.py', '2', '--extra'],
        'dist_test.sh': ['cfg.py', 'ckpt.pth', '2', '--extra'],
        'slurm_train.sh': ['part', 'job', 'cfg.py', 'work', '--extra'],
        'slurm_test.sh': ['part', 'job', 'cfg.py', 'ckpt.pth', '--extra'],
    }[script]
    result = subprocess.run(['bash', str(project / 'tools' / script), *args],
                            env=full_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return record.read_text().splitlines()


@pytest.mark.parametrize('script', LAUNCHERS)
def test_launchers_default_to_the_project_venv(project_copy, tmp_path, script):
    argv = launch(project_copy, script, tmp_path, path_python=True)
    assert argv[0] == str(project_copy / '.venv' / 'bin' / 'python')
    tool = 'train.py' if 'train' in script else 'test.py'
    assert str(project_copy / 'tools' / tool) in argv and argv[-1] == '--extra'
    if script.startswith('slurm'):
        assert '--launcher=slurm' in argv
    else:
        assert argv[1:3] == ['-m', 'torch.distributed.run']
        assert argv[argv.index('--launcher') + 1] == 'pytorch'


@pytest.mark.parametrize('script', LAUNCHERS)
def test_python_variable_overrides_the_venv(project_copy, tmp_path, script):
    other = write_script(str(tmp_path / 'other_python'), RECORDER)
    argv = launch(project_copy, script, tmp_path, path_python=True, PYTHON=other)
    assert argv[0] == other


@pytest.mark.parametrize('script', LAUNCHERS)
def test_without_a_venv_python_comes_from_path(project_copy, tmp_path, script):
    shutil.rmtree(project_copy / '.venv')
    argv = launch(project_copy, script, tmp_path, path_python=True)
    assert argv[0] == str(tmp_path / 'bin' / 'python')


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_multi_node_variables_reach_torchrun(project_copy, tmp_path, script):
    argv = launch(project_copy, script, tmp_path, path_python=False, NNODES='4',
                  NODE_RANK='3', MASTER_ADDR='10.1.2.3', PORT='1234')
    for option in ('--nnodes=4', '--node_rank=3', '--master_addr=10.1.2.3',
                   '--master_port=1234', '--nproc_per_node=2'):
        assert option in argv, argv


def test_slurm_script_requests_gpus_by_default(project_copy, tmp_path):
    log = tmp_path / 'srun.json'
    launch(project_copy, 'slurm_train.sh', tmp_path, path_python=False, GPUS_PER_NODE='4',
           FAKE_SRUN_LOG=str(log), SRUN_ARGS='--qos=low --exclusive')
    options = json.loads(log.read_text())['options']
    assert options['--gres'] == 'gpu:4' and options['--ntasks-per-node'] == '4'
    assert options['--ntasks'] == '1' and options['--cpus-per-task'] == '5'
    # SRUN_ARGS split into separate srun options
    assert options['--qos'] == 'low' and '--exclusive' in options


# ---- --launcher slurm on CPU nodes: Slurm's variables to torchrun's ----

SLURM_TASK = dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1',
                  SLURM_NODELIST='node[07-08]')


def slurm_env(monkeypatch, **env):
    for name in (*LAUNCH_VARS, *SLURM_TASK):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_slurm_variables_become_torchrun_variables(monkeypatch, fake_bin):
    from revisit_ssl.engine.cpu_distributed import slurm_to_torchrun_env
    slurm_env(monkeypatch, PATH=f'{fake_bin}:/usr/bin:/bin', **SLURM_TASK)
    slurm_to_torchrun_env()
    assert {k: os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                                       'MASTER_PORT')} == dict(
        RANK='3', WORLD_SIZE='4', LOCAL_RANK='1', MASTER_ADDR='127.0.0.1',
        MASTER_PORT='29500')
    # MASTER_ADDR / MASTER_PORT already set win, as in mmengine's _init_dist_slurm
    slurm_env(monkeypatch, PATH='/usr/bin:/bin', MASTER_ADDR='10.0.0.9', MASTER_PORT='4321',
              **SLURM_TASK)
    slurm_to_torchrun_env()
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('10.0.0.9', '4321')


def test_slurm_launcher_outside_srun_is_one_clear_error(monkeypatch, tmp_path):
    from revisit_ssl.engine.cpu_distributed import slurm_to_torchrun_env
    slurm_env(monkeypatch, SLURM_NTASKS='2')
    with pytest.raises(RuntimeError, match='SLURM_PROCID, SLURM_NODELIST not set.*'
                       'tools/slurm_train.sh.*tools/dist_train.sh'):
        slurm_to_torchrun_env()
    # no scontrol on PATH and no MASTER_ADDR: say which variable to set
    slurm_env(monkeypatch, PATH=str(tmp_path), **SLURM_TASK)
    with pytest.raises(RuntimeError, match=r"node\[07-08\].*set MASTER_ADDR"):
        slurm_to_torchrun_env()
    assert 'RANK' not in os.environ
