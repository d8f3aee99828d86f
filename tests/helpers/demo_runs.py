"""Short demo pretraining runs shared by several test files (tests/conftest.py's fixtures).

One run costs a few seconds of training but ~7 s of interpreter start-up on 2 cores, and
several files used to train the same 16-image run for themselves. The runs here are made
once per session and read by every test that needs them:

* ``straight``: 2 epochs in one go (``epoch_1.pth``, ``epoch_2.pth``, its output);
* ``stopped``: 1 epoch, then the run stops (``max_epochs=1``);
* ``resumed``: a copy of ``stopped`` continued with ``--resume`` to 2 epochs;
* ``dist``: ``tools/dist_train.sh CONFIG 2`` (one node, two CPU processes), 2 epochs.

All with the recipe's loader (2 persistent workers, PerSampleSeedSampler), 16 images at
batch 8 (2 iterations per epoch), K = 64, k = 4, a 1-epoch kNN warm-up (epoch 2 uses the NN
loss) and a checkpoint every epoch.
"""
import os
import os.path as osp
import shutil
import socket
import stat
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from warm_python import run_warm

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HELPERS = osp.join(ROOT, 'tests', 'helpers')
PY = sys.executable
VENV_PY = osp.join(ROOT, '.venv', 'bin', 'python')
DEMO_CONFIG = 'configs/knn_moco_demo.py'
FAKE_SRUN = osp.join(HELPERS, 'fake_srun.py')

# 16 images at batch 8 = 2 iterations per epoch; K=64 is a multiple of 8 and 16.
SHARED_OPTIONS: Dict[str, object] = {
    'train_dataloader.batch_size': 8,
    'train_dataloader.num_workers': 2,
    'train_dataloader.persistent_workers': True,  # the recipe's default
    'train_dataloader.dataset.indices': 16,
    'model.head.queue_len': 64,
    'model.head.knn_k': 4,
    # the demo's 10 warm-up epochs and 10-epoch checkpoints, shortened for 1-2 epoch runs
    'model.knn_warmup_epochs': 1,
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.logger.interval': 1,
    'custom_hooks': '[]',
}

# The launcher runs (tools/dist_train.sh, tools/slurm_train.sh): no dataloader workers, so
# the only processes are the ranks; 8 per rank on 2 ranks = 1 iteration of global batch 16.
LAUNCH_EPOCHS = 2
LAUNCH_OPTIONS = [
    f'train_cfg.max_epochs={LAUNCH_EPOCHS}',
    'train_dataloader.batch_size=8',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.indices=16',
    'model.head.queue_len=64',
    'model.head.knn_k=4',
    'model.knn_warmup_epochs=1',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.logger.interval=1',
    'custom_hooks=[]',
]
# variables of an outer launcher that must not leak into the runs
LAUNCH_VARS = ('PYTHON', 'NNODES', 'NODE_RANK', 'PORT', 'MASTER_ADDR', 'MASTER_PORT',
               'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'GPUS', 'GPUS_PER_NODE', 'GRES',
               'SRUN_ARGS', 'CPUS_PER_TASK')


def demo_options(data_root: str, **extra) -> List[str]:
    """``--cfg-options`` values of the shared runs; ``extra`` overrides or adds keys."""
    opts = {'train_dataloader.dataset.data_root': data_root, **SHARED_OPTIONS}
    opts.update(extra)
    return [f'{k}={v}' for k, v in opts.items()]


def train_env(**extra) -> Dict[str, str]:
    return dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1', PYTHONPATH=HELPERS,
                **extra)


def train(work_dir, opts: Sequence[str], *extra, config=DEMO_CONFIG, env=None,
          check: bool = True) -> Tuple[int, str, subprocess.CompletedProcess]:
    """``python tools/train.py CONFIG --work-dir W *extra --cfg-options *opts`` (warm fork).

    Returns:
        tuple: exit status, stdout + stderr, the CompletedProcess.
    """
    args = [PY, 'tools/train.py', str(config), '--work-dir', str(work_dir), *extra,
            '--cfg-options', *opts]
    result = run_warm(args, cwd=ROOT, env=train_env(**(env or {})))
    out = result.stdout + result.stderr
    if check:
        assert result.returncode == 0, out[-4000:]
    return result.returncode, out, result


class Run:
    """A finished shared run: its work dir, output (stdout + stderr) and stdout."""

    def __init__(self, work_dir: str, output: str, stdout: str = '') -> None:
        self.work_dir = work_dir
        self.output = output
        self.stdout = stdout

    def path(self, name: str) -> str:
        return osp.join(self.work_dir, name)


def straight_run(data_root: str, work_dir: str) -> Run:
    _, out, result = train(work_dir, demo_options(data_root, **{'train_cfg.max_epochs': 2}))
    return Run(work_dir, out, result.stdout)


def stopped_run(data_root: str, work_dir: str) -> Run:
    _, out, result = train(work_dir, demo_options(data_root, **{'train_cfg.max_epochs': 1}))
    return Run(work_dir, out, result.stdout)


def resumed_run(data_root: str, stopped: Run, work_dir: str) -> Run:
    """``stopped`` copied to ``work_dir`` (its pointer to the copy), then ``--resume``."""
    shutil.copytree(stopped.work_dir, work_dir)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'epoch_1.pth'))
    _, out, result = train(work_dir, demo_options(data_root, **{'train_cfg.max_epochs': 2}),
                           '--resume')
    return Run(work_dir, out, result.stdout)


# ----------------------------------------------------------------------------- launchers


def write_script(path: str, text: str) -> str:
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def make_fake_bin(bin_dir: str) -> str:
    """A PATH folder with a ``python`` that is not the project's, ``srun`` and ``scontrol``."""
    write_script(osp.join(bin_dir, 'python'),
                 '#!/bin/sh\necho "python from PATH, not the project\'s" >&2\nexit 97\n')
    write_script(osp.join(bin_dir, 'srun'),
                 f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_SRUN}" "$@"\n')
    # the master host of every fake node list
    write_script(osp.join(bin_dir, 'scontrol'), '#!/bin/sh\necho 127.0.0.1\n')
    return bin_dir


def launch_env(fake_bin: str, **extra) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCH_VARS and not k.startswith('SLURM_')}
    env.update(PATH=f'{fake_bin}:{os.environ["PATH"]}', OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    if not osp.exists(VENV_PY):  # the launchers would fall back to the fake python
        env['PYTHON'] = sys.executable
    env.update(extra)
    return env


def launch_args(demo_root: str) -> List[str]:
    return ['--cfg-options', f'train_dataloader.dataset.data_root={demo_root}',
            *LAUNCH_OPTIONS]


def dist_train(work_dir, demo_root, gpus, env) -> subprocess.Popen:
    return subprocess.Popen(
        ['bash', 'tools/dist_train.sh', DEMO_CONFIG, str(gpus), '--work-dir', str(work_dir),
         *launch_args(demo_root)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def port_was_taken(output: str) -> bool:
    """Whether a run failed because another process took its port meanwhile."""
    return 'EADDRINUSE' in output or 'ddress already in use' in output


def finish(procs, timeout=900):
    """Wait for all processes; (returncodes, outputs)."""
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return [p.returncode for p in procs], outputs


def run_on_free_port(start, attempts=3) -> List[str]:
    """``start(port)`` returns processes; rerun on a fresh port if one was taken meanwhile."""
    for _ in range(attempts):
        codes, outputs = finish(start(free_port()))
        if all(c == 0 for c in codes) or not port_was_taken(''.join(outputs)):
            break
    assert all(c == 0 for c in codes), '\n\n'.join(o[-3000:] for o in outputs)
    return outputs


def dist_run(demo_root: str, fake_bin: str, work_dir: str) -> Run:
    """``tools/dist_train.sh CONFIG 2`` with PYTHON unset and a foreign python on PATH."""
    outputs = run_on_free_port(lambda port: [
        dist_train(work_dir, demo_root, 2, launch_env(fake_bin, PORT=str(port)))
    ])
    return Run(work_dir, outputs[0])


def load(path: str) -> Optional[dict]:
    import torch
    return torch.load(path, map_location='cpu', weights_only=True)
