"""Plot a pretraining run's losses and kNN monitor accuracy into one PNG.

Reads the scalars mmengine's ``LocalVisBackend`` writes (``<work_dir>/<timestamp>/vis_data/
scalars.json``, one JSON record per line) with mmpretrain's ``load_json_log``, which splits
them into training records (with ``lr``) and the others (the ``KNNMonitorHook``'s); every run
folder of a resumed training is read, in order, a later record replacing an earlier one of the
same step. Left panel: ``loss``,
``loss_inst``, ``loss_knn`` (every key starting with ``loss``, or ``--loss-keys``) over
iterations; right panel: ``knn_top1_k20``, ``knn_top1_k200``, ... of the ``KNNMonitorHook``
(``--acc-keys``) over iterations, with the epoch-0 random-init baseline. The plotted series
are also written to a CSV next to the PNG.

``--x hours`` puts wall-clock training hours on the x axis instead of iterations (the paper's
Figure 5, training time vs performance): the hours at a logged step are the sum, over the
training records up to it, of the record's ``time`` times the iterations since the previous
record, / 3600. ``time`` is mmengine's mean seconds per iteration over the last
``log_processor.window_size`` iterations (10 in ``configs/_base_/default_runtime.py``), so
the sum is exact when that window equals the ``LoggerHook`` interval, and an estimate from
the sampled windows otherwise (the default interval is 50). Evaluation
steps (the ``KNNMonitorHook``'s records) take the hours of the training iterations before
them (linear interpolation between training records); the time spent evaluating is not
counted.

Example::

    python tools/analysis/plot_curves.py work_dirs/knn_moco_demo
    python tools/analysis/plot_curves.py work_dirs/knn_moco_demo --x hours
"""
import argparse
import csv
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

import matplotlib
import numpy as np
from mmpretrain.utils import load_json_log

matplotlib.use('Agg')  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot loss_inst / loss_knn / kNN accuracy of a work dir '
        'into one PNG (+ CSV of the series).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        'work_dir',
        help='training work dir (its */vis_data/scalars.json are read), or '
        'one scalars.json file')
    parser.add_argument(
        '--loss-keys',
        nargs='+',
        default=None,
        help='loss series to plot (default: every key starting with "loss")')
    parser.add_argument(
        '--acc-keys',
        nargs='+',
        default=None,
        help='accuracy series (default: every key matching knn_top1_*)')
    parser.add_argument(
        '--out',
        default=None,
        help='PNG path (default <work_dir>/curves.png); the CSV goes next '
        'to it')
    parser.add_argument(
        '--x',
        choices=('iter', 'hours'),
        default='iter',
        help="x axis: training iterations, or wall-clock training hours from "
        "the logged per-iteration 'time' (Figure 5)")
    parser.add_argument('--title', default=None)
    return parser.parse_args(argv)


def find_scalar_files(work_dir: str) -> List[str]:
    if osp.isfile(work_dir):
        return [work_dir]
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir!r}: is it a work '
            'dir of tools/train.py (with the default LocalVisBackend)?')
    return files


def read_records(files: List[str]) -> Dict[str, List[dict]]:
    """``{'train': [...], 'val': [...]}`` records of every file, in order."""
    records = dict(train=[], val=[])
    for path in files:
        try:
            log = load_json_log(path)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} holds a line that is not a JSON record '
                             f'({err}); is it a scalars.json of mmengine?')
        for mode in records:
            records[mode] += log[mode]
    return records


def series(records: List[dict], keys: List[str]) -> Dict[str, List[Tuple]]:
    """``{key: [(step, value), ...]}`` sorted by step, later records winning."""
    out = {}
    for key in keys:
        points = {
            int(rec['step']): float(rec[key])
            for rec in records if key in rec and 'step' in rec
        }
        if points:
            out[key] = sorted(points.items())
    return out


def training_hours(train_records: List[dict]) -> List[Tuple[int, float]]:
    """``[(step, hours), ...]`` of the training records, cumulative wall-clock time.

    Each record's ``time`` (mmengine's mean seconds per iteration over its
    ``LogProcessor`` window) stands for every iteration since the previous record, so it
    counts ``step - previous step`` times; the first record counts from step 0. With a
    logging interval of 1 this is the cumulative sum of the logged times.
    """
    times = series(train_records, ['time']).get('time')
    if not times:
        raise ValueError(
            "--x hours needs the per-iteration 'time' of the training records "
            '(logged by mmengine\'s LoggerHook); these scalars.json files have '
            'none. Use --x iter')
    steps = np.array([s for s, _ in times], dtype=np.float64)
    seconds = np.array([t for _, t in times], dtype=np.float64)
    gaps = np.diff(np.concatenate([[0.0], steps]))
    hours = np.cumsum(seconds * gaps) / 3600.0
    return list(zip(steps.astype(int).tolist(), hours.tolist()))


def to_hours(points: List[Tuple], clock: List[Tuple[int, float]]) -> List[Tuple]:
    """Replace each point's step by the training hours at that step (interpolated; step 0
    and earlier = 0 hours)."""
    steps, hours = zip(*([(0, 0.0)] + [c for c in clock if c[0] > 0]))
    return [(float(np.interp(step, steps, hours)), value)
            for step, value in points]


def main(argv=None) -> dict:
    args = parse_args(argv)
    files = find_scalar_files(args.work_dir)
    records = read_records(files)
    everything = records['train'] + records['val']
    all_keys = sorted({k for rec in everything for k in rec})
    loss_keys = args.loss_keys or [k for k in all_keys if k.startswith('loss')]
    acc_keys = args.acc_keys or [
        k for k in all_keys if re.fullmatch(r'.*knn_top1_k\d+', k)
    ]
    losses = series(records['train'], loss_keys) or series(everything, loss_keys)
    # The KNNMonitorHook writes one record per evaluation with nothing but its accuracies
    # (load_json_log's 'val'); the LoggerHook repeats the latest value in every training
    # record. Prefer the former.
    accs = series(records['val'], acc_keys) or series(everything, acc_keys)
    if not losses and not accs:
        raise ValueError(f'none of the keys {loss_keys + acc_keys} occurs in '
                         f'{files}; available: {all_keys}')
    if args.x == 'hours':
        clock = training_hours(records['train'])
        shown_losses = {k: to_hours(v, clock) for k, v in losses.items()}
        shown_accs = {k: to_hours(v, clock) for k, v in accs.items()}
        x_label = 'training time (hours)'
    else:
        clock = None
        shown_losses, shown_accs = losses, accs
        x_label = 'iteration'

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, points in shown_losses.items():
        steps, values = zip(*points)
        ax_loss.plot(steps, values, label=key, linewidth=1.2)
    ax_loss.set_xlabel(x_label)
    ax_loss.set_ylabel('loss')
    ax_loss.set_title('training losses')
    if losses:
        ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    for key, points in shown_accs.items():
        steps, values = zip(*points)
        ax_acc.plot(steps, values, marker='o', label=key)
        if accs[key][0][0] == 0:
            ax_acc.annotate(
                f'random init {values[0]:.1f}', (steps[0], values[0]),
                textcoords='offset points', xytext=(6, -12), fontsize=8)
    ax_acc.set_xlabel(x_label)
    ax_acc.set_ylabel('top-1 (%)')
    ax_acc.set_title('weighted kNN accuracy (KNNMonitorHook)')
    if accs:
        ax_acc.legend()
    else:
        ax_acc.text(0.5, 0.5, 'no kNN monitor records', ha='center',
                    va='center', transform=ax_acc.transAxes)
    ax_acc.grid(alpha=0.3)
    fig.suptitle(args.title or osp.basename(osp.normpath(args.work_dir)))
    fig.tight_layout()

    out_png = args.out or osp.join(
        args.work_dir if osp.isdir(args.work_dir) else osp.dirname(
            args.work_dir), 'curves.png')
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    out_csv = osp.splitext(out_png)[0] + '.csv'
    with open(out_csv, 'w', newline='') as f:
        writer = csv.writer(f)
        if clock is None:
            writer.writerow(['series', 'step', 'value'])
            for group in (losses, accs):
                for key, points in group.items():
                    writer.writerows((key, step, value) for step, value in points)
        else:
            writer.writerow(['series', 'step', 'hours', 'value'])
            for group, shown in ((losses, shown_losses), (accs, shown_accs)):
                for key, points in group.items():
                    writer.writerows(
                        (key, step, hours, value)
                        for (step, value), (hours, _) in zip(points, shown[key]))
    print(f'plotted {sorted(losses)} and {sorted(accs)} from '
          f'{len(files)} scalars file(s) to {out_png} (series in {out_csv})')
    return dict(png=out_png, csv=out_csv, losses=losses, accuracies=accs,
                files=files, x=args.x, x_values={
                    k: [x for x, _ in v]
                    for k, v in {**shown_losses, **shown_accs}.items()
                })


if __name__ == '__main__':
    main()
