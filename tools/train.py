"""Train a model from an OpenMMLab config: kNN-MoCo pretraining (mmpretrain scope) as well as
downstream fine-tuning configs whose ``default_scope`` is ``mmseg`` or ``mmdet``.

Examples::

    python tools/train.py configs/knn_moco_coco.py
    python tools/train.py configs/knn_moco_demo.py --work-dir work_dirs/demo
    python tools/train.py configs/knn_moco_demo.py --resume            # latest checkpoint
    python tools/train.py configs/knn_moco_demo.py --resume work_dirs/demo/epoch_2.pth
    bash tools/dist_train.sh configs/knn_moco_coco.py 8
"""
import argparse
import os
import os.path as osp
import sys
from copy import deepcopy

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import revisit_ssl  # noqa: F401  before any config is parsed: registers components, allow-lists
# checkpoint types and the `revisit_ssl::` config prefix (revisit_ssl/__init__.py)
from revisit_ssl.engine import setup_cpu_distributed
from revisit_ssl.engine.hooks import TrainingGuardError
from revisit_ssl.models.algorithms import UnswitchedWarmupError
from revisit_ssl.registry import drop_function_scopes
from revisit_ssl.utils.data_check import (DatasetNotFoundError,
                                          check_data_roots)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If a checkpoint path is given, resume from it; without a path, '
        'resume from the latest checkpoint in the work dir.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate linearly with the actual global batch '
        '(auto_scale_lr.base_batch_size in the config); the pretraining '
        'configs enable this themselves')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.dataset.data_root=/data/coco')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into the config (same rules as mmpretrain's tools/train.py)."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    # mmpretrain's self-supervised preprocessor needs default_collate (views of different
    # sizes stay separate tensors); mmseg / mmdet configs keep their own (pseudo) collate.
    defaults = ConfigDict(pin_memory=torch.cuda.is_available())
    if cfg.get('default_scope', 'mmpretrain') == 'mmpretrain':
        defaults.collate_fn = dict(type='default_collate')
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(field, None) is None:
            continue
        loader = deepcopy(defaults)
        loader.update(cfg[field])
        cfg[field] = loader
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return drop_function_scopes(cfg)


def main():
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    if (cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
            and not torch.cuda.is_available()):
        # mmengine's AmpOptimWrapper supports CUDA / NPU / MLU / MUSA only; stop before the
        # Runner prints the whole config and then asserts
        sys.exit('ERROR: --amp (AmpOptimWrapper) needs a CUDA GPU and none is '
                 'visible; on the CPU train in float32: drop --amp (or set '
                 'optim_wrapper.type=OptimWrapper).')
    try:
        check_data_roots(cfg)
    except DatasetNotFoundError as e:
        sys.exit(f'ERROR: {e}')
    # no GPU under a distributed launcher: gloo processes on the CPU
    setup_cpu_distributed(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    try:
        runner.train()
    except (TrainingGuardError, UnswitchedWarmupError) as e:
        # the message names the fix; a traceback would only bury it
        sys.exit(f'ERROR: {e}')
    last = osp.join(runner.work_dir, 'last_checkpoint')
    if runner.rank == 0 and osp.exists(last):
        with open(last) as f:
            print(f'Checkpoint: {f.read().strip()}\n'
                  f'Logs: {runner.log_dir}')


if __name__ == '__main__':
    main()
