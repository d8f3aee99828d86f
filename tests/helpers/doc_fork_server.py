"""A clean process that forks the documented commands of tests/test_documented_commands.py.

The test process itself cannot fork them once earlier tests have run torch in it: GNU OpenMP
(torch's CPU thread pool) is not fork-safe after it has run a parallel region, and a forked
child then hangs in its first parallel op. This server imports the OpenMMLab stack once and
computes nothing, so its forked children start warm and safe. Protocol: one JSON request per
line on stdin, ``{"argv", "env", "cwd", "log", "timeout"}``; one line back, ``{"rc": int}``.
"""
import json
import os.path as osp
import sys

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
# this checkout's revisit_ssl, not the one an editable install of another checkout maps
sys.path[:0] = [TESTS, osp.dirname(TESTS)]
import test_documented_commands as doc  # noqa: E402


def main() -> None:
    doc._preload()
    print(json.dumps({'ready': True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        rc = doc.run_python_in_fork(request['argv'], request['env'], request['cwd'],
                                    request['log'], request['timeout'])
        print(json.dumps({'rc': rc}), flush=True)


if __name__ == '__main__':
    main()
