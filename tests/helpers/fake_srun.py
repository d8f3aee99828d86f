"""Stand-in for Slurm's ``srun`` on one machine, for tests of tools/slurm_*.sh.

Parses the options the scripts pass (``--ntasks``, ``--ntasks-per-node``, ``-p``, ...), writes
them as JSON to ``$FAKE_SRUN_LOG`` when set, and starts ``--ntasks`` copies of the command
with the variables srun gives each task (``SLURM_PROCID``, ``SLURM_LOCALID``,
``SLURM_NODEID``, ``SLURM_NTASKS``, ``SLURM_NODELIST``, ``SLURM_JOB_NAME``). As with
``--kill-on-bad-exit=1``, the first task that fails stops the others; the exit status is the
first non-zero one.
"""
import json
import os
import subprocess
import sys
import time

OPTIONS_WITH_VALUE = ('-p', '--partition', '-J', '--job-name', '-n', '--ntasks')


def main() -> int:
    args = sys.argv[1:]
    opts = {}
    while args and args[0].startswith('-'):
        arg = args.pop(0)
        if '=' in arg:
            key, value = arg.split('=', 1)
        elif arg in OPTIONS_WITH_VALUE:
            key, value = arg, args.pop(0)
        else:
            key, value = arg, ''
        opts[key] = value
    if os.environ.get('FAKE_SRUN_LOG'):
        with open(os.environ['FAKE_SRUN_LOG'], 'w') as f:
            json.dump(dict(options=opts, command=args), f)
    ntasks = int(opts.get('--ntasks', opts.get('-n', 1)))
    per_node = int(opts.get('--ntasks-per-node', ntasks))
    nnodes = -(-ntasks // per_node)
    tasks = []
    for rank in range(ntasks):
        env = dict(
            os.environ,
            SLURM_PROCID=str(rank),
            SLURM_LOCALID=str(rank % per_node),
            SLURM_NODEID=str(rank // per_node),
            SLURM_NTASKS=str(ntasks),
            SLURM_NNODES=str(nnodes),
            SLURM_NODELIST=f'fakenode[0-{nnodes - 1}]',
            SLURM_JOB_NAME=opts.get('--job-name', opts.get('-J', 'fake')))
        tasks.append(subprocess.Popen(args, env=env))
    status = 0
    while any(task.poll() is None for task in tasks):
        failed = [t.returncode for t in tasks if t.returncode not in (None, 0)]
        if failed:
            status = failed[0]
            for task in tasks:
                if task.poll() is None:
                    task.terminate()
            break
        time.sleep(0.2)
    for task in tasks:
        task.wait()
        if status == 0 and task.returncode != 0:
            status = task.returncode
    return status


if __name__ == '__main__':
    sys.exit(main())
