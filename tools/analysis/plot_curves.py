"""Plot a pretraining run's losses and kNN monitor accuracy into one PNG.

Reads the scalars mmengine's ``LocalVisBackend`` writes (``<work_dir>/<timestamp>/vis_data/
scalars.json``, one JSON record per line; every run folder of a resumed training is read, in
order, a later record replacing an earlier one of the same step). Left panel: ``loss``,
``loss_inst``, ``loss_knn`` (every key starting with ``loss``, or ``--loss-keys``) over
iterations; right panel: ``knn_top1_k20``, ``knn_top1_k200``, ... of the ``KNNMonitorHook``
(``--acc-keys``) over iterations, with the epoch-0 random-init baseline. The plotted series
are also written to a CSV next to the PNG.

Example::

    python tools/analysis/plot_curves.py work_dirs/knn_moco_demo
"""
import argparse
import csv
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import matplotlib

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


def read_records(files: List[str]) -> List[dict]:
    records = []
    for path in files:
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f'{path}:{line_no} is not a JSON record: {err}')
    return records


def series(records: List[dict],
           keys: List[str],
           only: Optional[callable] = None) -> Dict[str, List[Tuple]]:
    """``{key: [(step, value), ...]}`` sorted by step, later records winning."""
    out = {}
    for key in keys:
        points = {}
        for rec in records:
            if key in rec and 'step' in rec and (only is None or only(rec)):
                points[int(rec['step'])] = float(rec[key])
        if points:
            out[key] = sorted(points.items())
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    files = find_scalar_files(args.work_dir)
    records = read_records(files)
    all_keys = sorted({k for rec in records for k in rec})
    loss_keys = args.loss_keys or [k for k in all_keys if k.startswith('loss')]
    acc_keys = args.acc_keys or [
        k for k in all_keys if re.fullmatch(r'.*knn_top1_k\d+', k)
    ]
    losses = series(records, loss_keys)

    # The KNNMonitorHook writes one record per evaluation with nothing but its accuracies;
    # the LoggerHook repeats the latest value in every training record. Prefer the former.
    def hook_record(rec):
        return not any(k.startswith('loss') or k == 'lr' for k in rec)

    accs = series(records, acc_keys, hook_record) or series(records, acc_keys)
    if not losses and not accs:
        raise ValueError(f'none of the keys {loss_keys + acc_keys} occurs in '
                         f'{files}; available: {all_keys}')

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, points in losses.items():
        steps, values = zip(*points)
        ax_loss.plot(steps, values, label=key, linewidth=1.2)
    ax_loss.set_xlabel('iteration')
    ax_loss.set_ylabel('loss')
    ax_loss.set_title('training losses')
    if losses:
        ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    for key, points in accs.items():
        steps, values = zip(*points)
        ax_acc.plot(steps, values, marker='o', label=key)
        if steps[0] == 0:
            ax_acc.annotate(
                f'random init {values[0]:.1f}', (steps[0], values[0]),
                textcoords='offset points', xytext=(6, -12), fontsize=8)
    ax_acc.set_xlabel('iteration')
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
        writer.writerow(['series', 'step', 'value'])
        for group in (losses, accs):
            for key, points in group.items():
                writer.writerows((key, step, value) for step, value in points)
    print(f'plotted {sorted(losses)} and {sorted(accs)} from '
          f'{len(files)} scalars file(s) to {out_png} (series in {out_csv})')
    return dict(png=out_png, csv=out_csv, losses=losses, accuracies=accs,
                files=files)


if __name__ == '__main__':
    main()
