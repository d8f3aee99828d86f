"""Histogram of the IoU between the two large crops (query and key) of a config's pipeline.

Section 3.1 / Figure 3a of `Revisiting Contrastive Methods for Unsupervised Learning of Visual
Representations <https://arxiv.org/abs/2106.05967>`_: how much the two views of an image
overlap. The boxes come from the ``ConstrainedMultiCrop`` of the config's training pipeline
(:meth:`ConstrainedMultiCrop.sample_boxes`, the sampler training uses, ``max_iou`` included),
drawn ``--draws-per-image`` times for each image of each ``--images`` folder. Only image sizes
are needed: they are read from the file headers (EXIF orientation applied, as OpenCV's
decoder does), so large folders are quick. For each folder it prints the share of pairs that
do not overlap at all (IoU = 0) and the mean IoU, and it writes one PNG with a histogram per
folder.

Example::

    python tools/analysis/crop_iou.py configs/section3/moco_v2_400e_coco.py \\
        --images data/coco/train2017 --out work_dirs/crop_iou_coco.png
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from PIL import Image

matplotlib.use('Agg')  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

import revisit_ssl  # noqa: E402,F401  registers ConstrainedMultiCrop
from revisit_ssl.utils import progress_bar  # noqa: E402

#: Extensions mmpretrain's CustomDataset takes (any case).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
#: EXIF orientations that swap width and height (transpose, 90 and 270 degree turns).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Histogram of the IoU between the query and key crops of a config '
        "(paper Sec. 3.1, Fig. 3a); prints each folder's share of pairs with no overlap "
        'and its mean IoU.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('config', help='config whose training pipeline has a '
                        'ConstrainedMultiCrop')
    parser.add_argument('--images', nargs='+', required=True, metavar='DIR',
                        help='image folder(s), searched recursively; one histogram each '
                        '(e.g. COCO train2017 and ImageNet train side by side)')
    parser.add_argument('--out', default='work_dirs/crop_iou.png', help='output PNG')
    parser.add_argument('--labels', nargs='+', default=None,
                        help='legend label per --images folder (default: folder names)')
    parser.add_argument('--num-images', type=int, default=1000,
                        help='images per folder (a seeded random subset of larger folders)')
    parser.add_argument('--draws-per-image', type=int, default=10,
                        help='query/key pairs drawn per image')
    parser.add_argument('--bins', type=int, default=20, help='histogram bins over [0, 1]')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help="override config keys, e.g. "
                        "train_dataloader.dataset.pipeline.1.max_iou=0.3")
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.images):
        parser.error(f'--labels needs one label per --images folder: got {len(args.labels)} '
                     f'labels for {len(args.images)} folders')
    for name in ('num_images', 'draws_per_image', 'bins'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


def find_crop_config(cfg: Config) -> dict:
    """The ``ConstrainedMultiCrop`` step of ``cfg``'s training pipeline.

    Dataset wrappers (``UniformSubsetDataset``, ...) are followed through their ``dataset``.
    """
    dataset = cfg.get('train_dataloader', {}).get('dataset')
    while isinstance(dataset, dict) and 'pipeline' not in dataset:
        dataset = dataset.get('dataset')
    if not isinstance(dataset, dict):
        raise ValueError(f'{cfg.filename}: no train_dataloader.dataset with a pipeline; '
                         'pass a pretraining config (e.g. configs/section3/'
                         'moco_v2_400e_coco.py)')
    crops = [t for t in dataset['pipeline'] if t.get('type') == 'ConstrainedMultiCrop']
    if not crops:
        raise ValueError(f'{cfg.filename}: the training pipeline has no ConstrainedMultiCrop '
                         f"(steps: {[t.get('type') for t in dataset['pipeline']]}); this tool "
                         "measures that transform's query and key crops")
    return crops[0]


def build_crop(cfg: Config):
    """Build the config's ``ConstrainedMultiCrop``."""
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build(find_crop_config(cfg))


def list_images(folder: str) -> List[str]:
    """Image files under ``folder`` (recursive, sorted); errors name ``--images``."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--images {folder!r} is not a folder (pass the folder of '
                                'training images, e.g. data/coco/train2017)')
    paths = []
    for root, _, files in os.walk(folder, followlinks=True):
        paths.extend(osp.join(root, f) for f in files if f.lower().endswith(IMG_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f'--images {folder!r} holds no images '
                                f'({", ".join(IMG_EXTENSIONS)}, any case, searched '
                                'recursively)')
    return sorted(paths)


def image_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` of the decoded image, from the header (EXIF orientation applied)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except OSError as err:
        raise OSError(f'cannot read the size of {path}: {err}') from err
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return height, width


def pair_ious(boxes: np.ndarray) -> np.ndarray:
    """IoU of ``boxes[:, 0]`` and ``boxes[:, 1]``, integer ``(x1, y1, x2, y2)`` boxes."""
    first, second = boxes[:, 0], boxes[:, 1]
    inter_w = np.minimum(first[:, 2], second[:, 2]) - np.maximum(first[:, 0], second[:, 0])
    inter_h = np.minimum(first[:, 3], second[:, 3]) - np.maximum(first[:, 1], second[:, 1])
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return inter / (areas[:, 0] + areas[:, 1] - inter).astype(np.float64)


def draw_ious(crop, sizes: Sequence[Tuple[int, int]], draws_per_image: int,
              rng: np.random.Generator, desc: str = '', progress: bool = True) -> np.ndarray:
    """IoU of the query and key of ``draws_per_image`` draws per image size, in order.

    Args:
        crop (ConstrainedMultiCrop): The sampler.
        sizes (Sequence[tuple[int, int]]): ``(height, width)`` per image.
        draws_per_image (int): Draws per image.
        rng (np.random.Generator): Source of randomness, used in image order.
        desc (str): Progress bar label.
        progress (bool): Draw a progress bar. Defaults to True.

    Returns:
        np.ndarray: ``len(sizes) * draws_per_image`` IoUs.
    """
    pairs = []
    for height, width in progress_bar(sizes, desc, len(sizes), progress):
        for _ in range(draws_per_image):
            boxes, _ = crop.sample_boxes(height, width, rng)
            pairs.append(boxes[:2])
    return pair_ious(np.stack(pairs))


def plot(series: Dict[str, np.ndarray], bins: int, max_iou: Optional[float], title: str,
         out: str) -> None:
    """One histogram (% of pairs per IoU bin) per series, into ``out``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.linspace(0., 1., bins + 1)
    for label, ious in series.items():
        ax.hist(ious, bins=edges, weights=np.full(len(ious), 100. / len(ious)),
                histtype='stepfilled' if len(series) == 1 else 'step', linewidth=1.5,
                alpha=0.8, label=f'{label} (mean {ious.mean():.2f})')
    if max_iou is not None:
        ax.axvline(max_iou, color='k', linestyle='--', linewidth=1, label=f'max_iou {max_iou}')
    ax.set_xlim(0, 1)
    ax.set_xlabel('IoU between query and key crop')
    ax.set_ylabel('% of pairs')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    crop = build_crop(cfg)
    labels = args.labels or [osp.basename(osp.normpath(d)) for d in args.images]
    series, results = {}, {}
    for label, folder in zip(labels, args.images):
        paths = list_images(folder)
        if len(paths) > args.num_images:
            # Its own generator, so the draws below do not depend on the folder's size.
            chosen = np.random.default_rng([args.seed, 1]).choice(
                len(paths), args.num_images, replace=False)
            paths = [paths[i] for i in sorted(chosen)]
        sizes = [image_size(p) for p in paths]
        # One generator per folder from --seed: each folder's draws are reproducible alone.
        ious = draw_ious(crop, sizes, args.draws_per_image, np.random.default_rng(args.seed),
                         desc=label, progress=not args.no_progress)
        result = dict(images=len(paths), pairs=len(ious), no_overlap=float(np.mean(ious == 0)),
                      mean_iou=float(ious.mean()))
        line = (f'{label}: {len(ious)} query/key pairs from {len(paths)} images: no overlap '
                f'(IoU = 0) {100 * result["no_overlap"]:.2f}%, mean IoU '
                f'{result["mean_iou"]:.4f}')
        if crop.max_iou is not None:
            # A pair over the cap is a fallback: all max_tries pairs failed.
            result['above_max_iou'] = int((ious > crop.max_iou).sum())
            line += (f', pairs above max_iou={crop.max_iou} (fallbacks after '
                     f'{crop.max_tries} tries) {result["above_max_iou"]}')
        print(line)
        series[label], results[label] = ious, result
    title = f'{osp.basename(args.config)}: IoU(query, key)'
    plot(series, args.bins, crop.max_iou, title, args.out)
    print(f'Wrote {args.out}')
    return results


if __name__ == '__main__':
    main()
