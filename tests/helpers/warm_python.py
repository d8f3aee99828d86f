"""Run ``python SCRIPT ARGS`` command lines as forked children of one warm, clean process.

A fresh interpreter spends ~7 s of CPU importing torch, mmengine, mmpretrain and revisit_ssl
before tools/train.py parses its arguments; on the 2-core CI machine that start-up, not the
few training iterations, is most of a short test run. This server imports the stack once and
computes nothing (GNU OpenMP, torch's CPU thread pool, is not fork-safe after a parallel
region, so the pytest process itself cannot fork). Each child runs the script as the
interpreter would (``__main__``, ``sys.argv``, the script's folder and ``PYTHONPATH`` on
``sys.path``, the request's environment) with stdout and stderr in files, and its exit status
comes back. Every child starts from the same clean state: nothing a run does is seen by the
next one.

Used by tests/conftest.py (``run_warm``) and, with its own server that also imports mmseg,
mmdet and scikit-learn, by tests/test_documented_commands.py; tests that check the command line
itself (start-up errors, the whole output) keep real subprocesses. Set
``REVISIT_SSL_TEST_SUBPROCESS=1`` to run every ``run_warm`` command as a fresh subprocess
instead.

Several command lines can start at once (``run_warm_group``: the ranks of a data-parallel
job, as torchrun would start them). Protocol: the server's arguments are extra modules to
import; one JSON request per line on stdin, ``{"group": [{"argv", "env", "cwd", "stdout",
"stderr", "timeout", "reset_warnings"}, ...]}`` (argv = ``[python, script | -c CODE | -m
MODULE, *args]``; ``stdout == stderr`` merges the streams, as ``2>&1`` would); one line back,
``{"rc": [int, ...]}``.
"""
import io
import json
import os
import os.path as osp
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from importlib import import_module
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SUBPROCESS = os.environ.get('REVISIT_SSL_TEST_SUBPROCESS') == '1'
# What the short training runs of the tests run with (set before torch loads: libgomp reads
# OMP_NUM_THREADS once, when it is loaded).
SERVER_ENV = dict(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')


# ----------------------------------------------------------------------------- server side


def _preload(extra: Sequence[str] = ()) -> None:
    """Import what tools/train.py imports (and ``extra``), once, before the children fork."""
    sys.path.insert(0, ROOT)
    import mmengine.runner  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import torch  # noqa: F401
    import torch.distributed  # noqa: F401

    import revisit_ssl  # noqa: F401
    import revisit_ssl.engine  # noqa: F401
    for module in extra:
        import_module(module)
    sys.path.remove(ROOT)


def _redirect(fd: int, path: str) -> None:
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, fd)
    os.close(target)


def _run_argv(argv: List[str], cwd: str, env: Dict[str, str]) -> None:
    """Run ``python SCRIPT | -c CODE | -m MODULE ...`` as that interpreter would."""
    extra = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    if argv[1] == '-c':
        sys.argv = ['-c'] + argv[3:]
        sys.path[:0] = [cwd] + extra
        exec(compile(argv[2], '<string>', 'exec'), {'__name__': '__main__'})
    elif argv[1] == '-m':
        sys.argv = [argv[2]] + argv[3:]
        sys.path[:0] = [cwd] + extra
        runpy.run_module(argv[2], run_name='__main__', alter_sys=True)
    else:
        sys.argv = argv[1:]
        sys.path[:0] = [osp.dirname(osp.abspath(argv[1]))] + extra
        runpy.run_path(argv[1], run_name='__main__')


def _child(request: Dict) -> int:
    """Body of a forked child: run the command; the exit status an interpreter would give."""
    os.setpgid(0, 0)  # its dataloader workers are killed with it
    _redirect(1, request['stdout'])
    if request['stderr'] == request['stdout']:
        os.dup2(1, 2)
    else:
        _redirect(2, request['stderr'])
    sys.stdout = io.TextIOWrapper(io.FileIO(1, 'w', closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, 'w', closefd=False), line_buffering=True)
    sys.stdin = open(os.devnull)
    os.chdir(request['cwd'])
    env = request['env']
    os.environ.clear()
    os.environ.update(env)
    if 'OMP_NUM_THREADS' in env:
        import torch
        torch.set_num_threads(int(env['OMP_NUM_THREADS']))
    if request.get('reset_warnings'):
        # the filters of an interpreter started without -W / PYTHONWARNINGS (the server
        # itself ignores everything: its imports must not warn into the children's logs)
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):
            warnings.simplefilter('ignore', category)
    try:
        _run_argv(request['argv'], request['cwd'], env)
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: B036  reported as the interpreter would
        traceback.print_exc()
        return 1


def _start_child(request: Dict) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # never returns
        code = 1
        try:
            code = _child(request)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    return pid


def _fork_group(requests: List[Dict]) -> List[int]:
    """Fork one child per request (e.g. the ranks of a job); wait for all of them.

    As torchrun does, the first child that fails stops the others (a rank waiting for a
    dead peer would otherwise hang in its next collective).
    """
    pids = [_start_child(request) for request in requests]
    codes: List[Optional[int]] = [None] * len(pids)
    deadline = time.time() + max(r['timeout'] for r in requests)
    while any(c is None for c in codes):
        for i, pid in enumerate(pids):
            if codes[i] is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[i] = os.waitstatus_to_exitcode(status)
        failed = any(c not in (None, 0) for c in codes)
        if failed or time.time() > deadline:
            for i, pid in enumerate(pids):
                if codes[i] is None:
                    os.killpg(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    codes[i] = -signal.SIGKILL if failed else 124
                    with open(requests[i]['stderr'], 'a') as f:
                        f.write('\n[warm_python] killed: ' + (
                            'another process of the group failed\n' if failed else
                            f'after {requests[i]["timeout"]:.0f} s\n'))
        time.sleep(0.05)
    for pid in pids:  # dataloader workers the children left behind (their process groups)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return [int(c) for c in codes]


def serve(extra: Sequence[str] = ()) -> None:
    _preload(extra)
    reply = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the protocol stream
    print(json.dumps({'ready': True}), file=reply, flush=True)
    for line in sys.stdin:
        codes = _fork_group(json.loads(line)['group'])
        print(json.dumps({'rc': codes}), file=reply, flush=True)


# ----------------------------------------------------------------------------- client side


def _read_and_remove(path: str) -> str:
    """Text of a log file the child wrote ('' once read: merged streams share one file)."""
    if not osp.exists(path):
        return ''
    with open(path, errors='replace') as f:
        text = f.read()
    os.remove(path)
    return text


class WarmPython:
    """Client of one server process (started on first use).

    Args:
        preload (Sequence[str]): Modules the server imports besides tools/train.py's.
        server_env (dict, optional): Environment of the server on top of this process's
            (default ``SERVER_ENV``; libgomp reads ``OMP_NUM_THREADS`` once, when it loads).
    """

    def __init__(self, preload: Sequence[str] = (),
                 server_env: Optional[Dict[str, str]] = None) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.logs = tempfile.mkdtemp(prefix='warm_python_')
        self.count = 0
        self.preload = list(preload)
        self.server_env = SERVER_ENV if server_env is None else server_env

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, osp.abspath(__file__), *self.preload], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, **self.server_env})
        ready = self.proc.stdout.readline()
        assert ready and json.loads(ready).get('ready'), 'the warm python server did not start'

    def run_group(self, runs: List[Tuple[List[str], str, Dict[str, str]]],
                  timeout: float = 600, merge_output: bool = False,
                  reset_warnings: bool = False) -> List[subprocess.CompletedProcess]:
        """Start every ``(argv, cwd, env)`` at once; each like ``subprocess.run(...)``.

        Args:
            runs (list[tuple]): ``([python, script | -c CODE | -m MODULE, *args], cwd,
                full environment)`` each.
            timeout (float): Seconds before all of them are killed.
            merge_output (bool): stderr into stdout, in order (``stderr`` is then '').
            reset_warnings (bool): Warning filters of a plain interpreter instead of the
                server's ignore-all.
        """
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        requests = []
        for argv, cwd, env in runs:
            assert argv[1].endswith('.py') or argv[1] in ('-c', '-m'), (
                f'only `python SCRIPT | -c | -m ...` runs warm: {argv}')
            self.count += 1
            out, err = (osp.join(self.logs, f'{self.count:03d}.{s}') for s in ('out', 'err'))
            requests.append(dict(argv=[str(a) for a in argv], env=dict(env), cwd=str(cwd),
                                 stdout=out, stderr=out if merge_output else err,
                                 timeout=timeout, reset_warnings=reset_warnings))
        self.proc.stdin.write(json.dumps(dict(group=requests)) + '\n')
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, 'the warm python server died'
        results = []
        for (argv, _, _), request, code in zip(runs, requests, json.loads(reply)['rc']):
            stdout, stderr = (_read_and_remove(request[s]) for s in ('stdout', 'stderr'))
            results.append(subprocess.CompletedProcess(argv, code, stdout, stderr))
        return results

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.proc = None
        try:
            os.rmdir(self.logs)
        except OSError:
            pass


_SERVER: Optional[WarmPython] = None


def run_warm_group(runs: List[Tuple[List[str], str, Dict[str, str]]],
                   timeout: float = 600) -> List[subprocess.CompletedProcess]:
    """Run ``(argv, cwd, env)`` command lines at once, forked from the warm server.

    With ``REVISIT_SSL_TEST_SUBPROCESS=1`` they are subprocesses. As torchrun does, the
    first one that fails stops the others.

    Args:
        runs (list[tuple]): ``([python, script, *args], cwd, full environment)`` each.
        timeout (float): Seconds before all of them are killed.

    Returns:
        list[subprocess.CompletedProcess]: returncode, stdout and stderr (text) of each.
    """
    global _SERVER
    if SUBPROCESS:
        files = [(tempfile.TemporaryFile('w+'), tempfile.TemporaryFile('w+')) for _ in runs]
        procs = [subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, text=True,
                                  stdout=out, stderr=err)
                 for (argv, cwd, env), (out, err) in zip(runs, files)]
        deadline = time.time() + timeout
        while (any(p.poll() is None for p in procs) and time.time() < deadline
               and not any(p.poll() not in (None, 0) for p in procs)):
            time.sleep(0.2)
        results = []
        for p, (out, err) in zip(procs, files):
            if p.poll() is None:
                p.kill()
            code = p.wait()
            out.seek(0)
            err.seek(0)
            results.append(subprocess.CompletedProcess(p.args, code, out.read(), err.read()))
            out.close()
            err.close()
        return results
    if _SERVER is None:
        _SERVER = WarmPython()
    return _SERVER.run_group(runs, timeout)


def run_warm(argv: List[str], cwd: str = ROOT, env: Optional[Dict[str, str]] = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``[python, script, *args]`` forked from the warm server (or as a subprocess).

    Args:
        argv (list[str]): The command line; argv[0] is the interpreter (not exec'd when warm).
        cwd (str): Working directory of the run.
        env (dict, optional): Its full environment (default: this process's).
        timeout (float): Seconds before the run is killed.

    Returns:
        subprocess.CompletedProcess: returncode, stdout and stderr (text).
    """
    env = dict(os.environ if env is None else env)
    if SUBPROCESS:
        return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    return run_warm_group([(argv, cwd, env)], timeout)[0]


def close() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.close()
        _SERVER = None


if __name__ == '__main__':
    serve(sys.argv[1:])
