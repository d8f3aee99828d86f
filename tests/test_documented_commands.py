"""Every shell command the documentation shows works.

The fenced ``bash`` / ``sh`` / ``shell`` blocks of README.md, configs/README.md and docs/*.md
are split into commands (``\\`` continuations joined, ``&&`` / ``;`` chains split, comment lines
dropped) and tested in document order, each either **run** or **dry-run**:

* **dry-run** when the command cannot run on a 2-core CPU machine without data:

  - it carries the docs' marker, a trailing comment ``# needs: coco, gpu`` (optionally followed
    by ``-- a note``; README.md, "Documented commands"): it needs a real dataset, GPUs, the
    network, ...;
  - it has a placeholder: an upper-case word (``CONFIG``, ``CHECKPOINT``, ``CKPT``, ``PATH``,
    ``OUT.pth``) that is not a file, ``...``, ``<...>``, a synopsis' optional ``[...]``,
    or a shell variable;
  - it is ``make TARGET`` (``make demo`` / ``make test`` set up the environment and run for
    minutes): ``make -n TARGET`` must succeed and the files its recipe names must exist.

  A dry-run still fails when the command names a script, config or flag that does not exist:
  the script must exist (shell scripts pass ``bash -n``), its ``--help`` must list every
  ``--flag`` of the command (a shell wrapper's flags are looked up in the Python tool it
  launches), every repository path it names must exist, and every config it names must load
  with the command's ``--cfg-options``, whose keys must lie inside the config.

* **run** otherwise, verbatim (after the same checks), in a scratch copy of the project (links
  to configs/, tools/, ...; its own data/, work_dirs/, checkpoints/). There, data/demo holds a
  small demo set in every layout (``SHORT_ARGS`` of ``tools/make_demo_data.py``) and the demo
  pretraining + conversion of ``make demo`` / docs/transfer.md have been done, so the commands
  find what the docs say an earlier step wrote. Short schedules are appended, never edited in:

  - ``tools/train.py`` (also through a shell wrapper) gets ``--cfg-options
    train_cfg.max_epochs=1`` (epoch-based loops) or ``train_cfg.max_iters=1`` (iteration-based)
    and ``train_cfg.val_interval=1`` (later options win, so the documented ones stay visible);
  - scripts listed in ``SHORT_ARGS`` get those arguments (fewer images, rounds, queries);
  - a documented ``work_dirs/<run>/epoch_<N>.pth`` / ``iter_<N>.pth`` that the shortened run did
    not write means that run's last checkpoint (mmengine's ``work_dirs/<run>/last_checkpoint``).

  Python commands run in a forked child of a clean server process
  (tests/helpers/warm_python.py, with ``DOC_PRELOAD`` imported besides what tools/train.py
  imports), which has imported torch and the OpenMMLab packages once (about 10 s saved per
  command on 2 cores), with a plain interpreter's warning filters; set
  ``REVISIT_SSL_DOC_SUBPROCESS=1`` to run each command through ``bash -c`` instead.

``python tests/test_documented_commands.py`` lists the commands and what the test does with
each.
"""
import argparse
import glob
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
# tests/helpers, on sys.path through tests/conftest.py
from warm_python import WarmPython

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOC_FILES = ['README.md', 'configs/README.md'] + sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))
SHELL_LANGUAGES = ('bash', 'sh', 'shell')
# Names the docs use for the project's interpreter (the .venv one, or an activated env).
PYTHONS = ('python', 'python3', '.venv/bin/python', '.venv/bin/python3')
# Top-level folders / files of the repository: a command naming a path below them names a
# file of this project, which must exist.
REPO_PREFIXES = ('configs/', 'tools/', 'benchmarks/', 'revisit_ssl/', 'docs/', 'tests/',
                 'requirements/')
# Written by the commands (or their preparation) in the scratch project; not linked.
OUTPUT_DIRS = ('data', 'work_dirs', 'checkpoints')
TRAIN_SCRIPTS = ('tools/train.py', )
# Appended to a command that runs the script: the tiny demo set, fewer rounds / queries.
# (64 training images: the demo pretraining needs 2 batches of 32, K = 256 = 8 batches.)
SHORT_ARGS = {
    'tools/make_demo_data.py': ['--num-train', '64', '--num-val', '16'],
    'benchmarks/pipeline_throughput.py': ['--num-images', '2', '--rounds', '1'],
    'tools/analysis/visualize_retrieval.py': ['--queue-size', '64', '--num-queries', '2'],
    'tools/analysis/segment_retrieval.py': ['--max-images', '4'],
    'tools/analysis/linear_probe.py': ['--num-l2', '5'],
}
# What the docs say earlier steps produce (``make demo``, docs/transfer.md's demo chain).
PREPARE = (
    'python tools/make_demo_data.py --out data/demo --formats cls voc cityscapes nyud davis',
    'python tools/train.py configs/knn_moco_demo.py --work-dir work_dirs/knn_moco_demo',
    'python tools/model_converters/extract_backbone.py '
    'work_dirs/knn_moco_demo/epoch_40.pth checkpoints/knn-moco_r18_demo_backbone.pth',
)
TIMEOUT_S = 600
SUBPROCESS = os.environ.get('REVISIT_SSL_DOC_SUBPROCESS') == '1'

_MARKER = re.compile(r'^needs:\s*([\w.+-]+(?:\s*,\s*[\w.+-]+)*)\s*(.*)$')
_PLACEHOLDER = re.compile(r'^[A-Z][A-Z0-9_]*(\.[A-Za-z0-9]+)?$')
_CHECKPOINT = re.compile(r'(work_dirs/[^/\s]+)/(epoch|iter)_\d+\.pth$')
_ENV_ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')
_SHELL_SYNTAX = ('|', '>', '<', '$(', '`')

# --------------------------------------------------------------------------- extraction


@dataclass
class DocCommand:
    """One command of a fenced shell block.

    Args:
        doc (str): Markdown file, relative to the repository root.
        line (int): 1-based line of the command's first line.
        text (str): The command without its comment, continuations joined.
        comment (str): Its trailing comment (of the last line), '' if none.
        needs (list[str]): Requirements named by a ``# needs: ...`` marker.
    """
    doc: str
    line: int
    text: str
    comment: str = ''
    needs: List[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        words = re.sub(r'[^\w./=-]+', '_', self.text)[:70]
        return f'{self.doc}:{self.line}:{words}'

    def tokens(self) -> List[str]:
        return shlex.split(self.text)


def fenced_shell_blocks(path: str) -> Iterator[Tuple[int, List[str]]]:
    """Yield ``(first line number, lines)`` of each fenced bash / sh / shell block."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    fence, language, start, body = None, '', 0, []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r'^(`{3,}|~{3,})\s*([\w+-]*)', stripped)
            if match:
                fence, language, start, body = match.group(1), match.group(
                    2).lower(), number + 1, []
        elif stripped.startswith(fence) and not stripped[len(fence):].strip():
            if language in SHELL_LANGUAGES:
                yield start, body
            fence = None
        else:
            body.append(line)


def split_comment(text: str) -> Tuple[str, str]:
    """Split a shell line into code and comment (a ``#`` starting a word outside quotes)."""
    quote = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == '\\' and quote == '"':
                i += 1
            elif char == quote:
                quote = None
        elif char == '\\':
            i += 1
        elif char in '\'"':
            quote = char
        elif char == '#' and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1:].strip()
        i += 1
    return text.rstrip(), ''


def split_chain(code: str) -> List[str]:
    """Split ``a && b ; c`` at operators outside quotes."""
    parts, quote, current, i = [], None, '', 0
    while i < len(code):
        char = code[i]
        if quote:
            if char == quote:
                quote = None
        elif char in '\'"':
            quote = char
        elif code.startswith('&&', i) or char == ';':
            parts.append(current)
            current = ''
            i += 2 if char == '&' else 1
            continue
        current += char
        i += 1
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_marker(comment: str) -> List[str]:
    match = _MARKER.match(comment)
    return [w.strip() for w in match.group(1).split(',')] if match else []


def commands_of_block(doc: str, start: int, lines: Sequence[str]) -> List[DocCommand]:
    commands = []
    pending, first = '', None
    for offset, raw in enumerate(lines):
        line = raw.strip()
        if not pending and (not line or line.startswith('#')):
            continue
        if first is None:
            first = start + offset
        if line.endswith('\\'):
            pending += line[:-1].rstrip() + ' '
            continue
        code, comment = split_comment(pending + line)
        pending = ''
        needs = parse_marker(comment)
        for part in split_chain(code):
            commands.append(DocCommand(doc, first, part, comment, needs))
        first = None
    if pending:
        raise ValueError(f'{doc}:{first}: a continuation line ends the block')
    return commands


def documented_commands(root: str = ROOT) -> List[DocCommand]:
    commands = []
    for doc in DOC_FILES:
        for start, lines in fenced_shell_blocks(osp.join(root, doc)):
            commands.extend(commands_of_block(doc, start, lines))
    return commands


# --------------------------------------------------------------------------- classification


@dataclass
class Invocation:
    """What a command runs: environment prefix, program, arguments."""
    env: Dict[str, str]
    argv: List[str]

    @property
    def program(self) -> str:
        return self.argv[0] if self.argv else ''

    def python_target(self) -> Optional[Tuple[str, str]]:
        """``('script', path)`` / ``('-c', code)`` / ``('-m', module)`` of a python command."""
        if self.program not in PYTHONS or len(self.argv) < 2:
            return None
        if self.argv[1] in ('-c', '-m'):
            return self.argv[1], self.argv[2]
        if self.argv[1].startswith('-'):
            return None
        return 'script', self.argv[1]


def _optional(token: str) -> bool:
    """``[X]`` / ``[X`` ... ``X]``: an optional part of a usage synopsis."""
    return token.startswith('[') or token.endswith(']')


def invocation(cmd: DocCommand) -> Invocation:
    """Environment prefix and argv; a synopsis' optional ``[VAR=...]`` / ``...`` are skipped."""
    tokens = cmd.tokens()
    env = {}
    while tokens and (_ENV_ASSIGNMENT.match(tokens[0].lstrip('[')) or tokens[0] == '...'):
        token = tokens.pop(0)
        if not _optional(token) and token != '...':
            key, value = token.split('=', 1)
            env[key] = value
    return Invocation(env, tokens)


def placeholders(cmd: DocCommand, root: str = ROOT) -> List[str]:
    found = []
    if '$' in cmd.text:
        found.append('a shell variable')
    for token in cmd.tokens():
        value = token.split('=', 1)[1] if '=' in token and not token.startswith(
            '-') else token
        if value == '...' or ('<' in value and '>' in value) or _optional(token):
            found.append(token if _optional(token) else value)
        elif _PLACEHOLDER.match(value) and not osp.exists(osp.join(root, value)):
            found.append(value)
    return found


def dry_run_reason(cmd: DocCommand) -> Optional[str]:
    """Why the command is only dry-run here (None: it runs)."""
    if cmd.needs:
        return 'needs ' + ', '.join(cmd.needs)
    found = placeholders(cmd)
    if found:
        return 'placeholder ' + ', '.join(found)
    if invocation(cmd).program == 'make':
        return 'make target (make -n)'
    return None


# --------------------------------------------------------------------------- checks


def cfg_options(args: Sequence[str]) -> Dict[str, object]:
    """The ``--cfg-options`` of an argument list, parsed as mmengine's DictAction does."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    known, _ = parser.parse_known_args(list(args))
    return dict(known.cfg_options)


def check_option_paths(cfg, options: Dict[str, object]) -> List[str]:
    """Option keys whose parent does not exist in ``cfg`` (merge would silently add them)."""
    bad = []
    for key in options:
        node = cfg
        parts = key.split('.')
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(
                    node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                bad.append(f"{key} ({'.'.join(parts[:depth + 1])} is not in the config)")
                break
        else:
            if not isinstance(node, (dict, list, tuple)):
                bad.append(f'{key} ({".".join(parts[:-1])} is not a dict or list)')
    return bad


def repo_paths(tokens: Sequence[str]) -> List[str]:
    """Tokens (or ``key=value`` values) naming files of this repository."""
    paths = []
    for token in tokens:
        value = token.split('=', 1)[1] if '=' in token else token
        if value.startswith('./'):
            value = value[2:]
        if value.startswith(REPO_PREFIXES) and not placeholders(
                DocCommand('', 0, shlex.quote(value))):
            paths.append(value)
    return paths


def wrapped_python_tool(script: str, root: str) -> Optional[str]:
    """The ``tools/*.py`` a shell wrapper (tools/dist_train.sh, ...) launches."""
    with open(osp.join(root, script)) as f:
        found = re.findall(r'(tools/[\w/]+\.py)', f.read())
    return found[0] if found else None


# --------------------------------------------------------------------------- execution


@dataclass
class Result:
    rc: int
    output: str
    argv: List[str]

    def tail(self, n: int = 6000) -> str:
        return self.output[-n:]


class Workspace:
    """A scratch project: links to the repository's sources, its own outputs."""

    def __init__(self, path: str) -> None:
        self.path = path
        # the server's interpreter as the tests': no OMP_NUM_THREADS=1 (commands run as a user's)
        self.fork_server = None if SUBPROCESS else WarmPython(
            preload=DOC_PRELOAD, server_env=dict(PYTHONWARNINGS='ignore'))
        for name in os.listdir(ROOT):
            if name in OUTPUT_DIRS or name in ('.git', '.pytest_cache', '__pycache__'):
                continue
            os.symlink(osp.join(ROOT, name), osp.join(path, name))
        for name in OUTPUT_DIRS:
            os.makedirs(osp.join(path, name), exist_ok=True)
        self.logs = osp.join(path, 'work_dirs', '_doc_command_logs')
        os.makedirs(self.logs, exist_ok=True)
        self.results: Dict[Tuple[str, ...], Result] = {}
        self.help_texts: Dict[str, Result] = {}
        self.env = dict(MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
        venv_bin = osp.dirname(sys.executable)
        self.env['PATH'] = venv_bin + os.pathsep + os.environ.get('PATH', '')

    # -- running ---------------------------------------------------------------------

    def execute(self, env: Dict[str, str], argv: List[str], label: str) -> Result:
        # Forked from the server, README.md's `.venv/bin/python X` and the docs' `python X`
        # are the same run (argv[0] is not exec'd): one run answers both
        program = argv[0] if argv else ''
        if program in PYTHONS and not SUBPROCESS:
            program = 'python'
        key = tuple(f'{k}={v}' for k, v in sorted(env.items())) + (program, *argv[1:])
        if key in self.results:
            return self.results[key]
        log = osp.join(self.logs, f'{len(os.listdir(self.logs)):03d}_{label}.log')
        full_env = {**self.env, **env}
        python = Invocation(env, argv).python_target()
        if python and not SUBPROCESS:
            run = self.fork_server.run_group([(argv, self.path, {**os.environ, **full_env})],
                                             timeout=TIMEOUT_S, merge_output=True,
                                             reset_warnings=True)[0]
            rc, output = run.returncode, run.stdout
            with open(log, 'w') as f:
                f.write(output)
        else:
            proc = subprocess.run(['bash', '-c', shlex.join(argv)],
                                  cwd=self.path,
                                  env={**os.environ, **full_env},
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT,
                                  text=True,
                                  errors='replace',
                                  timeout=TIMEOUT_S)
            rc, output = proc.returncode, proc.stdout
        result = Result(rc, output, argv)
        self.results[key] = result
        return result

    def help_text(self, script: str) -> Result:
        if script not in self.help_texts:
            self.help_texts[script] = self.execute({}, ['python', script, '--help'],
                                                   'help_' + osp.basename(script))
        return self.help_texts[script]

    # -- preparing a command ---------------------------------------------------------

    def last_checkpoint(self, run_dir: str) -> Optional[str]:
        marker = osp.join(self.path, run_dir, 'last_checkpoint')
        if not osp.isfile(marker):
            return None
        with open(marker) as f:
            return osp.relpath(f.read().strip(), self.path)

    def substitute_checkpoints(self, argv: List[str]) -> List[str]:
        """A documented checkpoint of a shortened run -> the checkpoint that run wrote."""
        out = []
        for token in argv:
            key, sep, value = token.rpartition('=') if '=' in token else ('', '', token)
            match = _CHECKPOINT.search(value)
            if match and not osp.exists(osp.join(self.path, value)):
                last = self.last_checkpoint(match.group(1))
                if last:
                    value = value[:match.start()] + last
            out.append(key + sep + value)
        return out

    def short_schedule(self, script: str, args: List[str]) -> List[str]:
        """Arguments appended to a command that runs ``script`` with ``args``."""
        extra = list(SHORT_ARGS.get(script, []))
        if script in TRAIN_SCRIPTS:
            from mmengine.config import Config
            configs = [a for a in args if a.endswith('.py')]
            cfg = Config.fromfile(osp.join(self.path, configs[0]))
            cfg.merge_from_dict(cfg_options(args))
            loop = cfg.train_cfg.get('type', 'EpochBasedTrainLoop')
            schedule = 'max_iters=1' if 'Iter' in loop or 'max_iters' in cfg.train_cfg \
                else 'max_epochs=1'
            extra += ['--cfg-options', f'train_cfg.{schedule}', 'train_cfg.val_interval=1']
        return extra

    def runnable_argv(self, inv: Invocation) -> List[str]:
        argv = self.substitute_checkpoints(inv.argv)
        python = inv.python_target()
        if python and python[0] == 'script':
            return argv + self.short_schedule(python[1], argv[2:])
        if inv.program in ('bash', 'sh') and len(argv) > 1 and argv[1].endswith('.sh'):
            tool = wrapped_python_tool(argv[1], self.path)
            if tool:
                return argv + self.short_schedule(tool, argv[2:])
        return argv

    # -- checks shared by runs and dry-runs --------------------------------------------

    def check_static(self, cmd: DocCommand) -> None:
        """Files, flags and configs the command names exist and fit."""
        inv = invocation(cmd)
        assert inv.argv, f'{cmd.id}: empty command'
        tokens = inv.argv
        for path in repo_paths(tokens):
            assert osp.exists(osp.join(self.path, path)), (
                f'{cmd.doc}:{cmd.line}: `{cmd.text}` names {path}, which does not exist')
        python = inv.python_target()
        flags_of = None
        if python and python[0] == 'script':
            flags_of = python[1]
        elif python and python[0] == '-c':
            compile(python[1], '<string>', 'exec')
        elif inv.program in ('bash', 'sh') and len(tokens) > 1:
            script = tokens[1]
            assert osp.isfile(osp.join(self.path, script)), (
                f'{cmd.doc}:{cmd.line}: {script} does not exist')
            syntax = subprocess.run(['bash', '-n', script], cwd=self.path,
                                    capture_output=True, text=True)
            assert syntax.returncode == 0, f'{script}: {syntax.stderr}'
            flags_of = wrapped_python_tool(script, self.path)
        elif inv.program == 'make':
            self.check_make(cmd, tokens)
        elif inv.program not in PYTHONS:
            program = inv.program
            found = (osp.isfile(osp.join(self.path, program)) if '/' in program else
                     shutil.which(program, path=self.env['PATH']))
            assert found, f'{cmd.doc}:{cmd.line}: program {program!r} not found'
        if flags_of:
            self.check_flags(cmd, flags_of, tokens)
        self.check_configs(cmd, tokens)

    def check_flags(self, cmd: DocCommand, script: str, tokens: Sequence[str]) -> None:
        assert osp.isfile(osp.join(self.path, script)), (
            f'{cmd.doc}:{cmd.line}: {script} does not exist')
        help_result = self.help_text(script)
        assert help_result.rc == 0, (
            f'`python {script} --help` failed:\n{help_result.tail()}')
        for token in tokens:
            if not token.startswith('--') or token == '--':
                continue
            flag = token.split('=', 1)[0]
            assert re.search(rf'(?<![\w-]){re.escape(flag)}(?![\w-])',
                             help_result.output), (
                                 f'{cmd.doc}:{cmd.line}: {script} has no {flag} '
                                 f'(see `python {script} --help`)')

    def check_configs(self, cmd: DocCommand, tokens: Sequence[str]) -> None:
        from mmengine.config import Config
        options = cfg_options(tokens)
        for path in repo_paths(tokens):
            if not (path.startswith('configs/') and path.endswith('.py')):
                continue
            cfg = Config.fromfile(osp.join(self.path, path))
            bad = check_option_paths(cfg._cfg_dict.to_dict(), options)
            assert not bad, f'{cmd.doc}:{cmd.line}: --cfg-options outside {path}: {bad}'
            cfg.merge_from_dict(options)

    def check_make(self, cmd: DocCommand, tokens: Sequence[str]) -> None:
        targets = [t for t in tokens[1:] if not t.startswith('-') and '=' not in t]
        dry = subprocess.run(['make', '-n'] + targets, cwd=self.path,
                             capture_output=True, text=True)
        assert dry.returncode == 0, f'{cmd.doc}:{cmd.line}: make -n failed: {dry.stderr}'
        for path in re.findall(r'(?:^|[\s=])((?:%s)[\w./-]+)' % '|'.join(
                re.escape(p) for p in REPO_PREFIXES), dry.stdout):
            assert osp.exists(osp.join(self.path, path)), (
                f'make {" ".join(targets)}: its recipe names {path}, which does not '
                'exist')

    # -- the two modes -------------------------------------------------------------------

    def run(self, cmd: DocCommand) -> Result:
        self.check_static(cmd)
        inv = invocation(cmd)
        argv = self.runnable_argv(inv)
        label = re.sub(r'\W+', '_', osp.basename(argv[1] if len(argv) > 1 else argv[0]))
        return self.execute(inv.env, argv, label)

    def prepare(self) -> None:
        for text in PREPARE:
            result = self.run(DocCommand('<prepare>', 0, text))
            assert result.rc == 0, (
                f'preparing the demo outputs failed: {shlex.join(result.argv)}\n'
                f'{result.tail()}')


# --------------------------------------------------------------------------- the tests

COMMANDS = documented_commands()


# What the documented tools import besides tools/train.py's, imported once by the server.
DOC_PRELOAD = ('mmdet.models', 'mmseg.models', 'sklearn.cluster', 'sklearn.linear_model',
               'sklearn.svm', 'revisit_ssl.downstream', 'revisit_ssl.evaluation')


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Workspace:
    ws = Workspace(str(tmp_path_factory.mktemp('documented_commands')))
    try:
        ws.prepare()
        yield ws
    finally:
        if ws.fork_server is not None:
            ws.fork_server.close()


def test_commands_found():
    docs = {c.doc for c in COMMANDS}
    assert {'README.md', 'docs/transfer.md', 'docs/evaluation.md'} <= docs
    runnable = [c for c in COMMANDS if dry_run_reason(c) is None]
    assert len(runnable) >= 10, [c.text for c in runnable]


@pytest.mark.parametrize('cmd', COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command(cmd: DocCommand, workspace: Workspace):
    reason = dry_run_reason(cmd)
    if reason:
        workspace.check_static(cmd)
        print(f'[dry-run: {reason}] {cmd.text}')
        return
    result = workspace.run(cmd)
    assert result.rc == 0, (
        f'{cmd.doc}:{cmd.line}: `{cmd.text}` failed (exit {result.rc}); ran '
        f'`{shlex.join(result.argv)}` in {workspace.path}. If it needs real data or a GPU, '
        f'mark it `# needs: ...` (README.md, "Documented commands").\n{result.tail()}')
    print(f'[run] {shlex.join(result.argv)}')


@pytest.mark.parametrize('text, message', [
    ('python tools/train.py configs/no_such_config.py', 'does not exist'),
    ('python tools/train.py configs/knn_moco_demo.py --no-such-flag', 'has no --no-such-flag'),
    ('python tools/train.py configs/knn_moco_demo.py --cfg-options model.backbon.depth=18',
     'outside configs/knn_moco_demo.py'),
    ('bash tools/no_such_script.sh configs/knn_moco_demo.py 2', 'does not exist'),
    ('no-such-program --flag', 'not found'),
])
def test_a_broken_command_fails_its_checks(text, message, workspace):
    with pytest.raises(AssertionError, match=message):
        workspace.check_static(DocCommand('x.md', 1, text))


def test_a_failing_command_is_reported(workspace):
    result = workspace.run(DocCommand(
        'x.md', 1, 'python tools/analysis/knn_eval.py configs/knn_moco_demo.py '
        'work_dirs/no_such_run/epoch_1.pth'))
    assert result.rc != 0 and 'no_such_run' in result.output


# --------------------------------------------------------------------------- the extractor


def test_extractor_joins_continuations_splits_chains_and_reads_markers(tmp_path):
    doc = tmp_path / 'x.md'
    doc.write_text('\n'.join([
        'text', '```bash', '# a comment line', 'python a.py \\', '    --x "y # not" \\',
        '    --z 1   # needs: coco, gpu -- why', '', 'pip download m && tar xzf m.tgz  # two',
        '```', '```python', 'python not_shell.py', '```', '~~~sh', 'make demo', '~~~'
    ]))
    blocks = list(fenced_shell_blocks(str(doc)))
    assert [start for start, _ in blocks] == [3, 14]
    commands = [c for start, lines in blocks
                for c in commands_of_block('x.md', start, lines)]
    assert [(c.line, c.text) for c in commands] == [
        (4, 'python a.py --x "y # not" --z 1'),
        (8, 'pip download m'), (8, 'tar xzf m.tgz'), (14, 'make demo')]
    assert commands[0].needs == ['coco', 'gpu']
    assert commands[0].tokens() == ['python', 'a.py', '--x', 'y # not', '--z', '1']
    assert commands[1].needs == [] and commands[1].comment == 'two'
    assert dry_run_reason(commands[0]) == 'needs coco, gpu'
    assert dry_run_reason(commands[3]) == 'make target (make -n)'
    assert dry_run_reason(commands[1]) is None


@pytest.mark.parametrize('text, expected', [
    ('python tools/test.py CONFIG CHECKPOINT', ['CONFIG', 'CHECKPOINT']),
    ('python x.py --cfg-options model.init_cfg.checkpoint=PATH', ['PATH']),
    ('python x.py a.jpg ...', ['...']),
    ('python x.py $WORK_DIR', ['a shell variable']),
    ('[GPUS=16] bash tools/x.sh [--flag v]', ['[GPUS=16]', '[--flag', 'v]']),
    ('python tools/train.py configs/knn_moco_demo.py --work-dir work_dirs/x', []),
    ('cat README.md', []),  # an upper-case name that is a file is no placeholder
])
def test_placeholders(text, expected):
    assert placeholders(DocCommand('x.md', 1, text)) == expected


def test_option_paths_outside_the_config_are_reported():
    cfg = dict(model=dict(backbone=dict(depth=50)),
               train_dataloader=dict(dataset=dict(pipeline=[dict(type='A')])))
    assert check_option_paths(cfg, {'model.backbone.base_channels': 32,
                                    'train_dataloader.dataset.pipeline.0.scale': 1}) == []
    bad = check_option_paths(cfg, {'model.backbon.depth': 18,
                                   'train_dataloader.dataset.pipeline.3.scale': 1})
    assert len(bad) == 2 and 'model.backbon' in bad[0] and 'pipeline.3' in bad[1]


def test_checkpoint_of_a_shortened_run_is_substituted(tmp_path):
    ws = Workspace.__new__(Workspace)
    ws.path = str(tmp_path)
    run = tmp_path / 'work_dirs' / 'demo'
    run.mkdir(parents=True)
    (run / 'epoch_1.pth').write_bytes(b'')
    (run / 'last_checkpoint').write_text(str(run / 'epoch_1.pth'))
    argv = ['python', 'x.py', 'work_dirs/demo/epoch_40.pth',
            'a.checkpoint=work_dirs/demo/epoch_40.pth', 'work_dirs/other/epoch_3.pth']
    assert ws.substitute_checkpoints(argv) == [
        'python', 'x.py', 'work_dirs/demo/epoch_1.pth',
        'a.checkpoint=work_dirs/demo/epoch_1.pth', 'work_dirs/other/epoch_3.pth']


def test_repository_paths_in_tool_and_config_docstrings_exist():
    """Usage examples in tools' docstrings and configs' comments name real files.

    A path counts when its folder exists here (``tools/dataset_converters/`` is mmseg's);
    ``my_*`` names stand for the reader's own files.
    """
    missing = []
    sources = glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True) + \
        glob.glob(osp.join(ROOT, 'benchmarks', '*.py')) + \
        glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    for source in sorted(sources):
        with open(source) as f:
            text = f.read()
        for path in re.findall(r'(?<![\w/.<-])((?:configs|tools|benchmarks)/[\w./-]+\.(?:py|sh))',
                               text):
            ours = osp.isdir(osp.join(ROOT, osp.dirname(path)))
            if ours and not osp.basename(path).startswith('my_') and not osp.exists(
                    osp.join(ROOT, path)):
                missing.append(f'{osp.relpath(source, ROOT)}: {path}')
    assert not missing, missing


if __name__ == '__main__':
    for command in COMMANDS:
        why = dry_run_reason(command)
        print(f'{command.doc}:{command.line}\t{"dry-run: " + why if why else "run"}\t'
              f'{command.text}')
