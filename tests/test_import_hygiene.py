"""``import revisit_ssl`` does what its docstring lists and nothing more; the layout has no
import circles and the tools / benchmarks rely on the installed package, not on ``sys.path``.

The import is probed in a fresh interpreter (the test process has imported everything already);
the tools' own runs are in the tests of each tool (they start from the clone without putting it
on ``sys.path``).
"""
import ast
import glob
import json
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Blocks scikit-learn (so mmpretrain's optional mmdet import fails too: mmdet imports sklearn),
# imports mmpretrain's own modules, so that what remains is what revisit_ssl adds, then reports
# every global state `import revisit_ssl` could change, before and after. The import must work
# without scikit-learn: only the evaluation tools need it.
PROBE = r'''
import json, os, sys, warnings
sys.modules['sklearn'] = None  # `import sklearn` raises ImportError
import numpy, torch
import mmpretrain.datasets, mmpretrain.engine, mmpretrain.models  # noqa: F401
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.logging.history_buffer import HistoryBuffer
from mmpretrain import registry


def state():
    return dict(
        modules=sorted(sys.modules),
        filters=[(f[0], getattr(f[1], 'pattern', f[1]), f[2].__name__,
                  getattr(f[3], 'pattern', f[3]), f[4]) for f in warnings.filters],
        packages=dict(MODULE2PACKAGE),
        safe_globals=sorted(map(repr, torch.serialization.get_safe_globals())),
        history_buffer={k: repr(v) for k, v in vars(HistoryBuffer).items()},
        registered={name: sorted(getattr(registry, name).module_dict)
                    for name in registry.__all__},
        environ=dict(os.environ), path=list(sys.path), threads=torch.get_num_threads(),
        default_dtype=str(torch.get_default_dtype()))


before = state()
import revisit_ssl  # noqa: E402,F401
after = state()
# the kNN monitor hook imports the evaluation package when it runs, not when it is imported
from revisit_ssl.engine.hooks import KNNMonitorHook  # noqa: E402,F401
lazy = 'revisit_ssl.evaluation' not in sys.modules
print(json.dumps(dict(before=before, after=after, lazy=lazy)))
'''


def run_probe():
    out = subprocess.run([sys.executable, '-c', PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_changes_only_what_the_docstring_lists():
    import revisit_ssl
    from revisit_ssl.utils.quiet_warnings import QUIET_WARNINGS
    probe = run_probe()
    before, after = probe['before'], probe['after']

    # 1. new modules: ours and what they import, never the evaluation, downstream, mmseg, mmdet
    new = set(after['modules']) - set(before['modules'])
    assert 'revisit_ssl' in new and 'revisit_ssl.engine.hooks' in new
    assert probe['lazy']
    for prefix in ('revisit_ssl.evaluation', 'revisit_ssl.downstream', 'sklearn', 'mmseg',
                   'mmdet'):
        assert not [m for m in new if m == prefix or m.startswith(prefix + '.')], prefix
    # 2. the registries gain names only, each a class or function defined in revisit_ssl
    for name, entries in after['registered'].items():
        assert set(before['registered'][name]) <= set(entries), name
    added = {(name, entry) for name, entries in after['registered'].items()
             for entry in set(entries) - set(before['registered'][name])}
    assert ('MODELS', 'KNNMoCo') in added and ('TRANSFORMS', 'ConstrainedMultiCrop') in added
    # 3. warning filters: exactly one per QUIET_WARNINGS entry, all 'ignore', put in front
    added_filters = after['filters'][:len(after['filters']) - len(before['filters'])]
    assert after['filters'][len(added_filters):] == before['filters']
    assert len(added_filters) == len(QUIET_WARNINGS)
    assert all(f[0] == 'ignore' for f in added_filters)
    # 4. the config package table gains 'revisit_ssl' alone
    assert {k: v for k, v in after['packages'].items() if k not in before['packages']} == {
        'revisit_ssl': 'revisit-ssl'}
    # 5. safe globals only added; HistoryBuffer changes in its two pickling methods only
    assert set(before['safe_globals']) < set(after['safe_globals'])
    changed = {k for k in set(before['history_buffer']) | set(after['history_buffer'])
               if before['history_buffer'].get(k) != after['history_buffer'].get(k)}
    assert changed == {'__getstate__', '__setstate__'}
    # 6. nothing else of the process: environment, sys.path, torch threads and dtype
    for key in ('environ', 'path', 'threads', 'default_dtype'):
        assert after[key] == before[key], key
    # the registered classes really are ours
    from mmpretrain import registry
    for name, entry in added:
        module = getattr(registry, name).module_dict[entry].__module__
        assert module.startswith('revisit_ssl.'), (name, entry, module)
    assert revisit_ssl.__doc__.count('\n1. ') == 1 and '\n4. ' in revisit_ssl.__doc__


def imported_modules(path):
    """Absolute names of the revisit_ssl modules a file imports at module level."""
    tree = ast.parse(open(path).read())
    package = osp.relpath(osp.dirname(path), ROOT).replace(osp.sep, '.')
    names = set()
    for node in tree.body:  # module level only: imports inside functions are lazy
        if isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith('revisit_ssl')}


def test_demo_modules_import_one_way():
    utils = osp.join(ROOT, 'revisit_ssl', 'utils')
    deps = {name: imported_modules(osp.join(utils, f'{name}.py'))
            for name in ('demo_scenes', 'demo_writers', 'demo_data')}
    assert deps['demo_scenes'] == set()
    # palette.py is a leaf (no revisit_ssl imports), shared with the DAVIS / NYUD code
    assert imported_modules(osp.join(utils, 'palette.py')) == set()
    assert deps['demo_writers'] == {'revisit_ssl.utils.demo_scenes', 'revisit_ssl.utils.palette'}
    assert deps['demo_data'] == {'revisit_ssl.utils.demo_scenes', 'revisit_ssl.utils.demo_writers'}


def test_tools_and_benchmarks_do_not_edit_sys_path():
    scripts = [osp.join(ROOT, 'tools', n) for n in
               ('train.py', 'test.py', 'check_dataset.py', 'make_demo_data.py')]
    scripts += sorted(glob.glob(osp.join(ROOT, 'benchmarks', '*.py')))
    assert len(scripts) >= 7
    for path in scripts:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Attribute) and node.attr == 'path' and isinstance(
                    node.value, ast.Name) and node.value.id == 'sys':
                raise AssertionError(f'{path} uses sys.path (line {node.lineno}); the '
                                     'package is installed (pip install -e .)')
