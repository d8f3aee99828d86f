"""Plot a long-tailed subset's images per class (sorted, log y) into a PNG.

Two sources of counts:

- the Pareto recipe alone (no data needed), ImageNet-LT's by default::

      python tools/analysis/plot_class_counts.py --out work_dirs/in118k_lt_counts.png
      python tools/analysis/plot_class_counts.py --num-classes 100 --max-count 500 \\
          --min-count 2 --total 8000 --out work_dirs/counts.png

- the dataset of a config (built as training builds it, so its data must be there): any
  dataset with ``get_class_counts()`` (``ParetoLongTailDataset``, ``UniformSubsetDataset``),
  or any labelled dataset::

      python tools/analysis/plot_class_counts.py --config configs/my_in118k_lt.py

Class ranks are split at 100 and 20 images into ImageNet-LT's many- / medium- / few-shot
groups, whose sizes the legend gives. The sorted counts are also written to a CSV next to the
PNG.
"""
import argparse
import csv
import os
import os.path as osp

import matplotlib
import numpy as np

matplotlib.use('Agg')  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from revisit_ssl.datasets.wrappers import IMAGENET_LT, pareto_class_counts  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot sorted images-per-class (log y) of a Pareto long-tailed subset.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--config', help='config whose train_dataloader.dataset to count')
    parser.add_argument('--num-classes', type=int, default=IMAGENET_LT['num_classes'])
    parser.add_argument('--alpha', type=float, default=IMAGENET_LT['alpha'])
    parser.add_argument('--max-count', type=int, default=IMAGENET_LT['max_count'])
    parser.add_argument('--min-count', type=int, default=IMAGENET_LT['min_count'])
    parser.add_argument('--total', type=int, default=IMAGENET_LT['total'],
                        help='total images; 0 derives it from the Pareto head quantile')
    parser.add_argument('--out', default='work_dirs/class_counts.png', help='output PNG')
    return parser.parse_args(argv)


def counts_from_config(path: str) -> np.ndarray:
    """Per-class counts of the training dataset of a config."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import revisit_ssl  # noqa: F401  registers the wrappers
    from mmpretrain.registry import DATASETS
    from revisit_ssl.datasets.wrappers import get_single_labels

    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    if hasattr(dataset, 'get_class_counts'):
        return np.asarray(dataset.get_class_counts())
    labels = get_single_labels(dataset)
    if labels is None:
        raise ValueError(f'The training dataset of {path} has no labels to count.')
    return np.bincount(labels)


def plot(counts: np.ndarray, out: str, title: str) -> None:
    ranked = np.sort(np.asarray(counts))[::-1]
    many, few = int((ranked > 100).sum()), int((ranked < 20).sum())
    medium = len(ranked) - many - few
    fig, ax = plt.subplots(figsize=(7, 4))
    ranks = np.arange(len(ranked))
    ax.fill_between(ranks, np.maximum(ranked, 0.9), 0.9, step='mid', alpha=0.35)
    ax.step(ranks, np.maximum(ranked, 0.9), where='mid', color='tab:blue', linewidth=1.2)
    ax.set_yscale('log')
    ax.set_ylim(bottom=0.9)
    ax.axhline(100, color='grey', linestyle=':', linewidth=1)
    ax.axhline(20, color='grey', linestyle=':', linewidth=1)
    ax.set_xlabel('class rank (sorted by size)')
    ax.set_ylabel('images per class (log)')
    ax.set_title(title, fontsize=10)
    ax.text(0.98, 0.95,
            f'{len(ranked)} classes, {int(ranked.sum()):,} images\n'
            f'many-shot (>100): {many}\nmedium (20-100): {medium}\nfew-shot (<20): {few}\n'
            f'max {int(ranked[0])}, min {int(ranked[-1])}',
            transform=ax.transAxes, ha='right', va='top', fontsize=8,
            bbox=dict(facecolor='white', alpha=0.8, edgecolor='none'))
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    with open(osp.splitext(out)[0] + '.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['rank', 'images'])
        writer.writerows(enumerate(ranked.tolist()))


def main(argv=None) -> np.ndarray:
    args = parse_args(argv)
    if args.config:
        counts = counts_from_config(args.config)
        title = f'Images per class: {osp.basename(args.config)}'
    else:
        counts = pareto_class_counts(args.num_classes, args.alpha, args.max_count,
                                     args.min_count, args.total or None)
        title = (f'Pareto long tail: alpha={args.alpha:g}, {args.num_classes} classes, '
                 f'{args.min_count}..{args.max_count} per class')
    plot(counts, args.out, title)
    print(f'Wrote {args.out} ({len(counts)} classes, {int(np.sum(counts)):,} images)')
    return counts


if __name__ == '__main__':
    main()
