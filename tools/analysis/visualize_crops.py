"""Draw kNN-MoCo's crop boxes, CC next to MC, over a few images into one PNG.

Each row is one image: on the left the boxes of constrained multi-crop (CC, the paper's: every
small crop has at least ``--min-overlap`` of its area inside the key), on the right those of
plain multi-crop (MC) for the same image. The key is red and thick, the query blue, the small
crops green; a small crop that breaks the overlap rule is dashed orange, so what CC changes is
visible at a glance. Boxes come from :meth:`ConstrainedMultiCrop.sample_boxes`, the sampler
the training pipeline uses.

Example::

    python tools/analysis/visualize_crops.py --out work_dirs/crops.png            # demo scenes
    python tools/analysis/visualize_crops.py data/coco/train2017/0000000000{09,25,30}.jpg
"""
import argparse
import os
import os.path as osp
from typing import List, Tuple

import cv2
import matplotlib
import numpy as np

matplotlib.use('Agg')  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from revisit_ssl.datasets.transforms import ConstrainedMultiCrop  # noqa: E402
from revisit_ssl.utils.demo_data import draw_scene  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw CC vs MC crop boxes over a few images into one PNG.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('images', nargs='*',
                        help='image files; none draws --num-demo procedural demo scenes')
    parser.add_argument('--num-demo', type=int, default=3,
                        help='demo scenes to draw when no image is given')
    parser.add_argument('--out', default='work_dirs/crops_cc_vs_mc.png', help='output PNG')
    parser.add_argument('--min-overlap', type=float, default=0.2,
                        help='CC rule: fraction of a small crop inside the key')
    parser.add_argument('--num-small', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def load_images(args: argparse.Namespace) -> List[Tuple[str, np.ndarray]]:
    """``(title, RGB image)`` pairs from the files given, or demo scenes."""
    if args.images:
        images = []
        for path in args.images:
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'Cannot read image file {path} (missing, corrupt or not an '
                              'image).')
            images.append((osp.basename(path), img[..., ::-1]))
        return images
    rng = np.random.default_rng(args.seed)
    return [(f'demo scene {i}', draw_scene(rng, (320, 240)).image[..., ::-1])
            for i in range(args.num_demo)]


def overlap_fraction(box: np.ndarray, key: np.ndarray) -> float:
    inter_w = max(0, min(box[2], key[2]) - max(box[0], key[0]))
    inter_h = max(0, min(box[3], key[3]) - max(box[1], key[1]))
    return inter_w * inter_h / float((box[2] - box[0]) * (box[3] - box[1]))


def draw_boxes(ax, img: np.ndarray, boxes: np.ndarray, min_overlap: float,
               title: str) -> None:
    ax.imshow(img)
    key = boxes[ConstrainedMultiCrop.KEY_INDEX]
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        if index == 0:
            style = dict(edgecolor='tab:blue', linewidth=2, label='query')
        elif index == ConstrainedMultiCrop.KEY_INDEX:
            style = dict(edgecolor='red', linewidth=3, label='key')
        elif overlap_fraction(boxes[index], key) >= min_overlap:
            style = dict(edgecolor='limegreen', linewidth=1.5, label='small crop')
        else:
            style = dict(edgecolor='orange', linewidth=1.5, linestyle='--',
                         label=f'small crop, < {min_overlap:.0%} in key')
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, **style))
    ax.set_title(title, fontsize=9)
    ax.axis('off')


def main(argv=None) -> str:
    args = parse_args(argv)
    images = load_images(args)
    samplers = {
        'CC': ConstrainedMultiCrop(num_small=args.num_small, constrained=True,
                                   min_overlap=args.min_overlap),
        'MC': ConstrainedMultiCrop(num_small=args.num_small, constrained=False),
    }
    fig, axes = plt.subplots(len(images), 2, figsize=(9, 3.4 * len(images)), squeeze=False)
    for row, (name, img) in enumerate(images):
        for col, (mode, sampler) in enumerate(samplers.items()):
            # The same seed for both columns: the query and key are the same crops, so the
            # columns differ only in the small crops.
            rng = np.random.default_rng([args.seed, row])
            boxes, fallbacks = sampler.sample_boxes(img.shape[0], img.shape[1], rng)
            broken = sum(overlap_fraction(b, boxes[1]) < args.min_overlap for b in boxes[2:])
            title = f'{mode}: {name}, {broken}/{len(boxes) - 2} small crops break the rule'
            if fallbacks:
                title += f' ({fallbacks} fallbacks)'
            draw_boxes(axes[row, col], img, boxes, args.min_overlap, title)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc='lower center', ncol=len(labels), fontsize=8)
    fig.suptitle(f'Constrained (CC, >= {args.min_overlap:.0%} of each small crop in the key) '
                 'vs plain multi-crop (MC)', fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f'Wrote {args.out}')
    return args.out


if __name__ == '__main__':
    main()
