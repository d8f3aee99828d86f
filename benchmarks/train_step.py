"""Median training-step time of mmpretrain's MoCo and kNN-MoCo (NN off, NN on, NN on + multi-crop).

A step is what ``tools/train.py`` runs per iteration: ``model.train_step(data, optim_wrapper)``,
i.e. the data preprocessor, the online forward, the EMA update of the momentum encoder, the key
forward, the losses, the enqueue, the backward pass and the SGD step. Every variant gets the
same seed, the same images (random uint8 views, already on the device) and the same optimiser.

The variants run in rounds; each round runs every variant for ``--steps`` steps, in an order
that rotates from round to round, so slow phases of a shared machine fall on all of them. The
reported time of a variant is the median over all its timed steps; ``per-round`` is the range
of the ratio computed round by round (how much the noise moved it). Warm-up steps are not timed.

Then the neighbour search alone (:func:`revisit_ssl.models.losses.find_neighbours`) is timed at
the paper's scale: 640 queries (128 images x (1 query + 4 small crops) per GPU), 2048-d,
K = 65536, k = 20, and set against a paper-scale step (ResNet-50, batch 128, 2x160 + 4x96,
K = 65536): measured directly with ``--paper``; otherwise estimated from steps at two small
batches, extrapolated linearly to 128 images (conv, BN and the search grow linearly with the
batch; the EMA update and the SGD step are the intercept).

It prints numbers and never asserts on them. Examples::

    python benchmarks/train_step.py                        # ResNet-18, 64/32 px, B 32, K 4096
    python benchmarks/train_step.py --device cuda --paper  # ResNet-50, 160/96 px, B 128, K 65536
    python benchmarks/train_step.py --device cuda --paper --size 224 --variants moco,nn_off,nn_on

Note: mmpretrain's ``MoCo`` shuffles the key batch with ``batch_shuffle_ddp`` even in one process
(a ``randperm`` and two gathers; harmless, it cannot change BN statistics inside one batch);
``KNNMoCo`` shuffles only across processes. On a GPU the shuffle index is made on the CPU.
"""
import argparse
import json
import logging
import os
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS

import revisit_ssl  # noqa: F401  registers KNNMoCo and DualQueueHead
from revisit_ssl.models.losses import find_neighbours

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: The model settings of the paper (configs/knn_moco_coco.py); the benchmark varies only the
#: backbone depth, the queue length and the head's switches.
MODEL_CFG = osp.join(ROOT, 'configs', '_base_', 'models', 'knn_moco_r50.py')

VARIANTS = ('moco', 'nn_off', 'nn_on', 'nn_on_mc')
LABELS = {
    'moco': 'mmpretrain MoCo',
    'nn_off': 'KNNMoCo NN off',
    'nn_on': 'KNNMoCo NN on',
    'nn_on_mc': 'KNNMoCo NN on + 2+{n} crops',
}
#: (numerator, denominator, target) of the printed ratios
RATIOS = (('nn_off', 'moco', 1.02), ('nn_on', 'nn_off', 1.10),
          ('nn_on_mc', 'nn_on', None))

PAPER_QUERIES, PAPER_DIM, PAPER_K, PAPER_KNN_K = 640, 2048, 65536, 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument(
        '--paper', action='store_true',
        help='paper scale: ResNet-50, batch 128, 160 / 96 px, K 65536 '
        '(explicit flags below still override)')
    parser.add_argument('--depth', type=int, help='ResNet depth (18; 50 with --paper)')
    parser.add_argument('--size', type=int, help='query/key crop size (64; 160 with --paper)')
    parser.add_argument('--small-size', type=int, help='small crop size (32; 96 with --paper)')
    parser.add_argument('--batch', type=int, help='images per step (32; 128 with --paper)')
    parser.add_argument('--queue-len', type=int, help='K (4096; 65536 with --paper)')
    parser.add_argument('--num-small', type=int, default=4, help='small crops of nn_on_mc')
    parser.add_argument('--variants', default=','.join(VARIANTS),
                        help=f'comma-separated subset of {",".join(VARIANTS)}')
    parser.add_argument('--warmup-steps', type=int, default=2, help='untimed steps per variant')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per variant and round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1,
                        help='CPU threads of torch (default 1: steadier on a shared machine)')
    parser.add_argument('--search-repeats', type=int, default=3,
                        help='timed calls of the paper-scale neighbour search (0: skip it)')
    parser.add_argument('--share-batches', default='4,8',
                        help='without --paper: the two small ResNet-50 batches whose step '
                        "times are extrapolated to 128 images ('' to skip)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', metavar='PATH',
                        help='also write the raw step times (seconds, per variant, round and '
                        'step), the round orders, the medians and the ratios to this file')
    args = parser.parse_args(argv)
    scale = dict(depth=(18, 50), size=(64, 160), small_size=(32, 96), batch=(32, 128),
                 queue_len=(4096, PAPER_K))
    for name, (default, paper) in scale.items():
        if getattr(args, name) is None:
            setattr(args, name, paper if args.paper else default)
    args.variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f'unknown variants {sorted(unknown)}; choose from {VARIANTS}')
    return args


def model_cfg(variant: str, depth: int, queue_len: int, num_small: int) -> dict:
    """Config of one variant: the paper's KNNMoCo model, or MoCo with the same parts."""
    cfg = Config.fromfile(MODEL_CFG).model.to_dict()
    backbone_dim = 512 if depth in (18, 34) else 2048
    cfg['backbone']['depth'] = depth
    cfg['neck'].update(in_channels=backbone_dim, hid_channels=backbone_dim)
    cfg['head'].update(queue_len=queue_len, backbone_dim=backbone_dim,
                       use_knn=variant != 'nn_off')
    cfg.update(knn_warmup_epochs=0,  # the NN loss is in the graph from the first step
               num_small_crops=num_small if variant == 'nn_on_mc' else 0)
    if variant != 'moco':
        return cfg
    return dict(
        type='MoCo',
        queue_len=queue_len,
        feat_dim=cfg['head']['feat_dim'],
        momentum=cfg['momentum'],
        backbone=cfg['backbone'],
        neck=cfg['neck'],
        head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
                  temperature=cfg['head']['temperature']),
        data_preprocessor=cfg['data_preprocessor'])


def make_data(batch: int, size: int, small_size: int, num_small: int,
              device: torch.device, seed: int) -> dict:
    """One batch as the dataloader delivers it: uint8 views, plus no data samples."""
    g = torch.Generator().manual_seed(seed)
    views = [torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
             for _ in range(2)]
    views += [torch.randint(0, 256, (batch, 3, small_size, small_size), generator=g,
                            dtype=torch.uint8) for _ in range(num_small)]
    return dict(inputs=[v.to(device) for v in views], data_samples=None)


class StepRunner:
    """One model, its optimiser and its batch; ``step()`` returns the seconds of one step."""

    def __init__(self, cfg: dict, data: dict, device: torch.device, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = MODELS.build(cfg)
        self.model.init_weights()
        self.model.to(device)
        self.model.train()
        self.optim_wrapper = OptimWrapper(torch.optim.SGD(
            self.model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4))
        self.data = data
        self.sync: Callable[[], None] = (
            torch.cuda.synchronize if device.type == 'cuda' else lambda: None)

    def step(self) -> float:
        self.sync()
        start = time.perf_counter()
        self.model.train_step(self.data, self.optim_wrapper)
        self.sync()
        return time.perf_counter() - start


def round_orders(names: List, rounds: int) -> List[List]:
    """The order the variants run in, per round: rotated by one place each round."""
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]


def run_rounds(runners: Dict[str, StepRunner], warmup: int, steps: int,
               rounds: int) -> Dict[str, List[List[float]]]:
    """Seconds per step, ``times[variant][round][step]``, variants interleaved by round."""
    for runner in runners.values():
        for _ in range(warmup):
            runner.step()
    times = {name: [] for name in runners}
    for order in round_orders(list(runners), rounds):
        for name in order:
            times[name].append([runners[name].step() for _ in range(steps)])
    return times


def median_of(rounds: List[List[float]]) -> float:
    return statistics.median(t for one_round in rounds for t in one_round)


def time_neighbour_search(device: torch.device, repeats: int, seed: int) -> float:
    """Median seconds of ``find_neighbours`` at 640 x 2048 against a 2048 x 65536 fp32 queue."""
    g = torch.Generator().manual_seed(seed)
    queries = torch.nn.functional.normalize(
        torch.randn(PAPER_QUERIES, PAPER_DIM, generator=g), dim=1).to(device)
    queue = torch.nn.functional.normalize(
        torch.randn(PAPER_DIM, PAPER_K, generator=g), dim=0).to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    find_neighbours(queries, queue, PAPER_KNN_K)  # warm-up (kernels, allocator)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        find_neighbours(queries, queue, PAPER_KNN_K)
        sync()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def extrapolated_paper_step(args: argparse.Namespace, device: torch.device) -> float:
    """Seconds of a paper-scale NN-on multi-crop step, extrapolated from two small batches.

    The two batch sizes run interleaved (as the variants do), two steps per round. Should noise
    make the larger batch look no slower, the step is scaled in proportion to the larger batch
    instead (which also scales the fixed EMA / SGD cost, so it overestimates the step).
    """
    b1, b2 = sorted(int(b) for b in args.share_batches.split(','))
    cfg = model_cfg('nn_on_mc', 50, PAPER_K, args.num_small)
    runners = {
        batch: StepRunner(cfg, make_data(batch, 160, 96, args.num_small, device, args.seed),
                          device, args.seed)
        for batch in (b1, b2)
    }
    times = run_rounds(runners, 1, 2, args.rounds)
    medians = {batch: median_of(t) for batch, t in times.items()}
    for batch, seconds in medians.items():
        print(f'  ResNet-50 NN on + 2x160+{args.num_small}x96, K {PAPER_K}, batch {batch}: '
              f'median step {seconds * 1e3:.0f} ms')
    slope = (medians[b2] - medians[b1]) / (b2 - b1)
    if slope <= 0:
        print(f'  (noise: batch {b2} was not slower than batch {b1}; scaling batch {b2} '
              f'proportionally instead)')
        return medians[b2] * 128 / b2
    return medians[b1] + slope * (128 - b1)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    # init_weights logs every parameter at INFO; the benchmark prints its own lines
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    if device.type == 'cpu':
        torch.set_num_threads(args.threads)
    # the neighbour loss must be active: knn_warmup_epochs=0 and epoch 0
    MessageHub.get_current_instance().update_info('epoch', 0)

    runners = {}
    for variant in args.variants:
        num_small = args.num_small if variant == 'nn_on_mc' else 0
        data = make_data(args.batch, args.size, args.small_size, num_small, device, args.seed)
        cfg = model_cfg(variant, args.depth, args.queue_len, args.num_small)
        runners[variant] = StepRunner(cfg, data, device, args.seed)

    where = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
             f'CPU, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores visible')
    print(f'device: {where}; torch {torch.__version__}')
    print(f'ResNet-{args.depth}, batch {args.batch}, {args.size} px '
          f'(small crops {args.small_size} px), K {args.queue_len}, '
          f'{args.warmup_steps} warm-up + {args.rounds} rounds x {args.steps} steps per variant')
    times = run_rounds(runners, args.warmup_steps, args.steps, args.rounds)
    medians = {name: median_of(t) for name, t in times.items()}
    print(f'{"variant":<32}{"median ms":>10}{"min ms":>9}{"max ms":>9}')
    for name, rounds in times.items():
        flat = [t for one_round in rounds for t in one_round]
        label = LABELS[name].format(n=args.num_small)
        print(f'{label:<32}{medians[name] * 1e3:>10.1f}{min(flat) * 1e3:>9.1f}'
              f'{max(flat) * 1e3:>9.1f}')
    ratios = {}
    for num, den, target in RATIOS:
        if num not in medians or den not in medians:
            continue
        ratio = medians[num] / medians[den]
        per_round = [statistics.median(a) / statistics.median(b)
                     for a, b in zip(times[num], times[den])]
        ratios[f'{num}/{den}'] = dict(ratio=ratio, per_round=per_round, target=target)
        verdict = '' if target is None else (
            f' (target <= {target:.2f}: {"met" if ratio <= target else "NOT met"})')
        print(f'ratio {num}/{den} = {ratio:.3f}{verdict}; '
              f'per-round {min(per_round):.3f}..{max(per_round):.3f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(times=times, orders=round_orders(list(runners), args.rounds),
                           medians=medians, ratios=ratios), f, indent=1)
    del runners

    if args.search_repeats <= 0:
        return
    search = time_neighbour_search(device, args.search_repeats, args.seed)
    print(f'neighbour search alone ({PAPER_QUERIES} queries x {PAPER_DIM}-d vs K {PAPER_K}, '
          f'k {PAPER_KNN_K}, fp32): median {search * 1e3:.1f} ms')
    paper_run = (args.paper and args.depth == 50 and args.batch == 128
                 and args.size == 160 and args.small_size == 96
                 and args.queue_len == PAPER_K and 'nn_on_mc' in medians)
    if paper_run:
        step = medians['nn_on_mc']
        how = 'measured NN-on multi-crop step above'
    elif args.share_batches:
        step = extrapolated_paper_step(args, device)
        how = f'linear extrapolation to batch 128 from batches {args.share_batches}'
    else:
        return
    print(f'paper-scale step (ResNet-50, batch 128, 2x160+{args.num_small}x96, K {PAPER_K}): '
          f'{step * 1e3:.0f} ms ({how}); neighbour search share = {100 * search / step:.1f}%')


if __name__ == '__main__':
    main()
