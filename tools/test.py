"""Evaluate a checkpoint with a config's test loop (mmpretrain, mmseg or mmdet scope).

Examples::

    python tools/test.py \
        configs/downstream/mmseg/fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512.py \
        work_dirs/fcn_r50-d16_knn-moco-pre_4xb4-45e_voc12aug-512x512/epoch_45.pth
    python tools/test.py \
        configs/downstream/mmseg/demo/fcn_r18-w32-d16_knn-moco-demo_1xb8-2e_demo-voc12aug-96x96.py \
        work_dirs/fcn_r18-w32-d16_knn-moco-demo_1xb8-2e_demo-voc12aug-96x96/epoch_2.pth
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import revisit_ssl  # noqa: F401  before any config is parsed: registers components, allow-lists
# checkpoint types and the `revisit_ssl::` config prefix (revisit_ssl/__init__.py)
from revisit_ssl.engine import setup_cpu_distributed
from revisit_ssl.registry import drop_function_scopes
from revisit_ssl.utils.data_check import (DatasetNotFoundError,
                                          check_data_roots)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and results')
    parser.add_argument(
        '--out', help='dump the raw results of the test loop to this pickle')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    drop_function_scopes(cfg)  # a `revisit_ssl::` base marks collate_fn (revisit_ssl/registry.py)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if cfg.get('test_dataloader') is None:
        sys.exit(f'ERROR: {args.config} has no test_dataloader / test_cfg: '
                 'pretraining configs are evaluated with the tools in '
                 'tools/analysis (knn_eval.py, linear_probe.py, ...).')
    if args.out:
        cfg.test_evaluator = list(cfg.test_evaluator) if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator.append(
            dict(type='DumpResults', out_file_path=args.out))
    try:
        check_data_roots(cfg, dataloaders=('test_dataloader', ))
    except DatasetNotFoundError as e:
        sys.exit(f'ERROR: {e}')
    # no GPU under a distributed launcher: gloo processes on the CPU
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
