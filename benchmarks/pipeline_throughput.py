"""Images/s of the pretraining pipelines on one CPU core: MoCo-v2, MC, CC and CC + A+.

Every pipeline decodes the same JPEG files (procedural demo scenes at COCO-like sizes), makes
its views, augments them and packs them, exactly as a dataloader worker does. Each image goes
through every pipeline in turn, once per round, with the same random seed each round, so a
round repeats the same work; the time of an image is its fastest round (what is left after
other processes' interference), summed over images. It prints numbers and never asserts.

Example::

    python benchmarks/pipeline_throughput.py --num-images 48 --rounds 3
"""
import os

# One core, one thread: set before numpy / OpenCV / torch start their thread pools.
for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import os.path as osp  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import revisit_ssl  # noqa: E402,F401  registers the transforms
from revisit_ssl.datasets.transforms import (ConstrainedMultiCrop,  # noqa: E402
                                             build_view_pipeline, moco_v2_view_transforms)
from revisit_ssl.utils.demo_data import draw_scene  # noqa: E402


def make_images(folder: str, num: int, seed: int) -> list:
    """Write ``num`` demo scenes of COCO-like sizes (about 640 x 480) as JPEG files."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(num):
        long_side = int(rng.integers(500, 641))
        short_side = int(long_side * rng.uniform(0.6, 0.8))
        size = (long_side, short_side) if index % 3 else (short_side, long_side)
        scene = draw_scene(rng, size)
        path = osp.join(folder, f'{index:05d}.jpg')
        cv2.imwrite(path, scene.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def pipelines(backend: str) -> dict:
    """The compared pipelines, as configs would write them."""
    load, pack = dict(type='StrictLoadImageFromFile'), dict(type='PackInputs')
    moco_v2_view = [
        dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.), backend=backend)
    ] + moco_v2_view_transforms()

    def multi_crop(constrained: bool, a_plus: bool) -> list:
        return [
            load,
            dict(type='ConstrainedMultiCrop', constrained=constrained, backend=backend),
            dict(type='MultiCropViewAugment', a_plus=a_plus),
            pack,
        ]

    return {
        'MoCo-v2 2x224': [load, dict(type='MultiView', num_views=2,
                                     transforms=[moco_v2_view]), pack],
        'MC 2x160+4x96': multi_crop(False, False),
        'CC 2x160+4x96': multi_crop(True, False),
        'CC + A+': multi_crop(True, True),
    }


def time_one(pipeline, path: str, seed: int) -> float:
    # Same seeds in every round and pipeline: MC and CC then take the same query, key and
    # augmentation draws, so their difference is the cost of the crop rule.
    np.random.seed(seed)
    random.seed(seed)  # RandomGrayscale draws from Python's random module
    start = time.perf_counter()
    pipeline(dict(img_path=path))
    return time.perf_counter() - start


def time_sampler(constrained: bool, blocks: int = 7, per_block: int = 300) -> float:
    """Microseconds per image of drawing the six boxes alone (fastest block)."""
    crop = ConstrainedMultiCrop(constrained=constrained)
    rng = np.random.default_rng(0)
    best = float('inf')
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            crop.sample_boxes(480, 640, rng)
        best = min(best, (time.perf_counter() - start) / per_block * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=48)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--backend', default='pillow', choices=['pillow', 'cv2'],
                        help='resize backend of the crops')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    # mmcv warns on every Pillow saturation step; it says nothing about speed.
    warnings.filterwarnings('ignore', message="Only use 'alpha' for pillow backend")
    cv2.setNumThreads(1)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(folder, args.num_images, args.seed)
        built = {name: build_view_pipeline(cfg) for name, cfg in pipelines(args.backend).items()}
        for pipeline in built.values():  # warm up caches and lazy imports
            for index, path in enumerate(paths[:4]):
                time_one(pipeline, path, args.seed + index)
        # seconds[name][round, image]
        seconds = {name: np.zeros((args.rounds, len(paths))) for name in built}
        for round_index in range(args.rounds):
            for index, path in enumerate(paths):
                for name, pipeline in built.items():
                    seconds[name][round_index, index] = time_one(
                        pipeline, path, args.seed + index)

    best = {name: float(times.min(axis=0).sum()) for name, times in seconds.items()}
    median = {name: float(np.median(times.sum(axis=1))) for name, times in seconds.items()}
    mc = 'MC 2x160+4x96'
    print(f'{args.num_images} JPEGs ~640x480, {args.rounds} rounds, one core, '
          f'resize backend {args.backend}')
    print(f'{"pipeline":<16}{"images/s":>10}{"ms/image":>10}{"vs MC":>8}'
          f'{"median-round images/s":>24}')
    for name, total in best.items():
        print(f'{name:<16}{args.num_images / total:>10.1f}'
              f'{1000 * total / args.num_images:>10.2f}{total / best[mc]:>8.3f}'
              f'{args.num_images / median[name]:>24.1f}')
    cc_over_mc = best['CC 2x160+4x96'] / best[mc] - 1
    print(f'CC costs {100 * cc_over_mc:+.1f}% over MC (target <= +5%).')
    print(f'box sampling alone: MC {time_sampler(False):.0f} us/image, '
          f'CC {time_sampler(True):.0f} us/image')


if __name__ == '__main__':
    main()
