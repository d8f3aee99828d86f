"""Train a config like tools/train.py, then save every rank's model state.

Run by tests/test_reliability.py as the ranks of a torchrun job (forked with torchrun's
variables, tests/helpers/warm_python.py): ``--launcher pytorch`` on CPU processes (gloo).
Writes ``<work_dir>/rank<r>_state.pth`` with the unwrapped model's state dict.
"""
import argparse
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
import revisit_ssl  # noqa: E402,F401
from revisit_ssl.engine import setup_cpu_distributed  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.module if hasattr(runner.model,
                                           'module') else runner.model
    torch.save(model.state_dict(),
               osp.join(args.work_dir, f'rank{runner.rank}_state.pth'))


if __name__ == '__main__':
    os.environ.setdefault('LOCAL_RANK', '0')
    main()
