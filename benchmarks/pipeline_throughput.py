"""Images/s of kNN-MoCo's data pipeline on one CPU core, against the release's way of making views.

Modes (``--mode``):

- ``release`` (default): the CC + A+ pipeline of ``configs/knn_moco_coco.py`` (2 x 160 + 4 x 96,
  the fast uint8 transforms) against a release-style loader built here from the paper's
  description: PIL decode, torchvision ``RandomResizedCrop`` boxes with the constrained small
  crops, ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` p=0.8, ``RandomGrayscale`` p=0.2, PIL
  ``GaussianBlur`` sigma in (0.1, 2) p=0.5, flip, torchvision ``AutoAugment(IMAGENET)`` on half
  of the positives, ``ToTensor`` + ``Normalize``. ``--with-previous`` adds the mmcv/Pillow
  pipeline this project used before (``HueSafeColorJitter``, mmpretrain ``AutoAugment``).
- ``decode``: OpenCV vs Pillow decoding of the same JPEGs, and what each does with an EXIF
  orientation tag.
- ``memory``: resident memory of one DataLoader worker running the config's pipeline over
  ``--memory-images`` images (10,000 by default), sampled as it goes.
- ``profile``: cProfile of ``--num-images`` images through one pipeline (``--profile-target``).
- ``variants``: MoCo-v2, MC, CC and CC + A+ with the previous transforms (the CC-vs-MC cost).
- ``device``: the accelerator path of ``configs/knn_moco_coco_device_aug.py``: the workers'
  decode + crop + resize against the release-style loader (img/s and the median ratio over
  alternated rounds), then the ms per batch of ``--device-batch`` x (2 x 160 + 4 x 96) of its
  ``DeviceViewAugmentPreprocessor`` on the available device (CUDA if present, else one CPU
  thread).

The photos are synthesised (there are no real photographs on these machines): procedural
scenes of 640 x 480 (every third 480 x 640) with soft edges, an illumination gradient and sensor
noise, saved by Pillow at JPEG quality 90 in a temporary folder. Everything runs in this one
process on one core (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``, CPU affinity one
core). Rounds alternate the order of the pipelines and every pipeline sees the same images with
the same seeds; the script prints the median over rounds and never asserts.

Example::

    python benchmarks/pipeline_throughput.py --num-images 60 --rounds 7
    python benchmarks/pipeline_throughput.py --mode memory --memory-images 10000
    python benchmarks/pipeline_throughput.py --mode device --num-images 60 --rounds 7
"""
import os

# One core, one thread: set before numpy / OpenCV / torch start their thread pools.
for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import os.path as osp  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Callable, Dict, List  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

import revisit_ssl  # noqa: E402,F401  registers the transforms
from revisit_ssl.datasets.transforms import (ConstrainedMultiCrop,  # noqa: E402
                                             build_view_pipeline, moco_v2_view_transforms)
from revisit_ssl.utils.demo_data import draw_scene  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# mmcv's Pillow saturation step (previous pipeline only) warns on every call.
warnings.filterwarnings('ignore', message="Only use 'alpha' for pillow backend")


# ----------------------------------------------------------------------------------- images
def natural_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like BGR uint8 image: a demo scene, softened, lit unevenly, with noise."""
    scene = draw_scene(rng, (width, height)).image.astype(np.float32)
    scene = cv2.GaussianBlur(scene, (0, 0), 1.2)  # lens-like edges instead of aliased ones
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    gx, gy = rng.uniform(-0.3, 0.3, 2)
    light = 1 + gx * (xs / width - .5) + gy * (ys / height - .5)
    scene = scene * light[..., None] + rng.normal(0, 3, scene.shape)
    return np.clip(scene, 0, 255).astype(np.uint8)


def make_images(folder: str, num: int, seed: int) -> List[str]:
    """Write ``num`` photo-like JPEGs (640 x 480, every third 480 x 640), Pillow quality 90."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(num):
        height, width = (480, 640) if index % 3 else (640, 480)
        path = osp.join(folder, f'{index:05d}.jpg')
        Image.fromarray(natural_image(rng, height, width)[..., ::-1]).save(path, quality=90)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------- pipelines
class PILGaussianBlur:
    """MoCo-v2's blur as released: PIL ``GaussianBlur`` with ``sigma ~ U(min, max)``."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class ReleaseStyleViews:
    """kNN-MoCo's views made the release's way: PIL images and torchvision transforms.

    Written from the paper's description of the official code: PIL decode + ``convert('RGB')``,
    ``RandomResizedCrop`` boxes (the small ones constrained to overlap the key; the same box
    sampler as ours, which costs ~0.1 ms), ``resized_crop`` on the PIL image, MoCo-v2's
    augmentations on every view, A+ (flip + AutoAugment ImageNet) on half of the positives,
    ``ToTensor`` + ``Normalize`` per view.
    """

    def __init__(self, large_size: int = 160, small_size: int = 96, a_plus: bool = True):
        from torchvision import transforms as T
        self.F = T.functional
        self.sampler = ConstrainedMultiCrop(large_size=large_size, small_size=small_size)
        self.sizes = [large_size] * 2 + [small_size] * 4
        self.a_plus = a_plus
        normalize = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        self.standard = T.Compose([
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([PILGaussianBlur((0.1, 2.0))], p=0.5),
            T.RandomHorizontalFlip(),
            T.ToTensor(), normalize
        ])
        self.auto_augment = T.Compose([
            T.RandomHorizontalFlip(),
            T.AutoAugment(T.AutoAugmentPolicy.IMAGENET),
            T.ToTensor(), normalize
        ])

    def __call__(self, results: dict) -> List[torch.Tensor]:
        with open(results['img_path'], 'rb') as file:
            img = Image.open(file).convert('RGB')
        boxes, _ = self.sampler.sample_boxes(img.height, img.width)
        views = []
        for index, ((x1, y1, x2, y2), size) in enumerate(zip(boxes.tolist(), self.sizes)):
            view = self.F.resized_crop(img, y1, x1, y2 - y1, x2 - x1, [size, size])
            key = index == ConstrainedMultiCrop.KEY_INDEX
            use_auto = self.a_plus and not key and random.random() < 0.5
            views.append((self.auto_augment if use_auto else self.standard)(view))
        return views


def config_pipeline(config: str = 'configs/knn_moco_coco.py') -> list:
    """The ``train_dataloader`` pipeline of a config, as the Runner would build it."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset:
        dataset = dataset['dataset']
    return dataset['pipeline']


def previous_pipeline(a_plus: bool = True, constrained: bool = True,
                      backend: str = 'pillow') -> list:
    """This project's pipeline before the fast transforms (mmcv / Pillow / mmpretrain ops)."""
    return [
        dict(type='StrictLoadImageFromFile'),
        dict(type='ConstrainedMultiCrop', constrained=constrained, backend=backend),
        dict(type='MultiCropViewAugment', a_plus=a_plus),
        dict(type='PackInputs'),
    ]


def build_pipelines(with_previous: bool) -> Dict[str, Callable]:
    built = {
        'fast (config)': build_view_pipeline(config_pipeline()),
        'release-style': ReleaseStyleViews(),
    }
    if with_previous:
        built['previous'] = build_view_pipeline(previous_pipeline())
    return built


def seed_all(seed: int) -> None:
    np.random.seed(seed)
    random.seed(seed)
    # torchvision's transforms draw from torch's CPU generator. torch.manual_seed would also
    # queue lazy CUDA / XPU / MTIA seeding with a stack trace, ~1-3 ms per call on this stack.
    torch.default_generator.manual_seed(seed)


def run_all(pipeline: Callable, paths: List[str], seed: int) -> float:
    """Seconds for ``paths`` through ``pipeline``, image ``i`` seeded with ``seed + i``."""
    start = time.perf_counter()
    for index, path in enumerate(paths):
        seed_all(seed + index)
        pipeline(dict(img_path=path))
    return time.perf_counter() - start



def alternated_rates(built: dict, paths: list, seed: int, rounds: int) -> dict:
    """img/s of each pipeline per round, after a warm-up, in alternating order."""
    names = list(built)
    for pipeline in built.values():  # warm-up: lazy imports, lookup tables, caches
        run_all(pipeline, paths[:6], seed)
    rates = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            rates[name].append(len(paths) / run_all(built[name], paths, seed))
    return rates


def print_rates(rates: dict, width: int) -> None:
    print(f'{"pipeline":<{width}}{"median img/s":>14}{"min":>8}{"max":>8}')
    for name, values in rates.items():
        values = np.array(values)
        print(f'{name:<{width}}{np.median(values):>14.1f}{values.min():>8.1f}'
              f'{values.max():>8.1f}')


def one_core() -> str:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if hasattr(os, 'sched_setaffinity'):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
        return f'core {core}'
    return 'one thread'


# ------------------------------------------------------------------------------------ modes
def mode_release(args, paths: List[str]) -> None:
    built = build_pipelines(args.with_previous)
    rates = alternated_rates(built, paths, args.seed, args.rounds)
    fast, release = np.array(rates['fast (config)']), np.array(rates['release-style'])
    ratios = fast / release
    print(f'{len(paths)} JPEGs 640x480 (synthetic, quality 90), {args.rounds} alternated '
          f'rounds, one core; CC + A+, 2 x 160 + 4 x 96')
    print_rates(rates, width=16)
    print(f'ratio fast/release = {np.median(ratios):.2f} (median of per-round ratios; '
          f'range {ratios.min():.2f}-{ratios.max():.2f}; target >= 1.5)')
    if 'previous' in rates:
        previous = np.array(rates['previous'])
        print(f'ratio previous/release = {np.median(previous / release):.2f}, '
              f'fast/previous = {np.median(fast / previous):.2f}')


def _read_pil_bgr(data: bytes) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _read_cv2(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def exif_behaviour(folder: str) -> str:
    """What each decoder does with EXIF orientation 6 (rotate 90 degrees) on a 64 x 32 JPEG."""
    img = Image.fromarray(np.zeros((32, 64, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = osp.join(folder, 'exif6.jpg')
    img.save(path, exif=exif)
    data = open(path, 'rb').read()
    import mmcv
    shapes = {
        'PIL convert(RGB) (the release)': _read_pil_bgr(data).shape[:2],
        'cv2 IMREAD_COLOR': _read_cv2(data).shape[:2],
        "mmcv imfrombytes flag 'color' (cv2)": mmcv.imfrombytes(data, 'color').shape[:2],
        "mmcv flag 'color_ignore_orientation'":
        mmcv.imfrombytes(data, 'color_ignore_orientation').shape[:2],
    }
    return '\n'.join(f'  {name:<40} -> {h}x{w} ({"rotated" if (h, w) == (64, 32) else "as stored"})'
                     for name, (h, w) in shapes.items())


def mode_decode(args, paths: List[str]) -> None:
    data = [open(p, 'rb').read() for p in paths]
    readers = {'cv2.imdecode': _read_cv2, 'PIL open+convert(RGB)+asarray+BGR': _read_pil_bgr,
               'PIL open+convert(RGB) only': lambda d: Image.open(io.BytesIO(d)).convert('RGB')}
    for reader in readers.values():
        reader(data[0])
    times = {name: [] for name in readers}
    names = list(readers)
    for round_index in range(args.rounds):
        for name in (names if round_index % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            for item in data:
                readers[name](item)
            times[name].append((time.perf_counter() - start) / len(data) * 1e3)
    print(f'decode, {len(paths)} JPEGs 640x480 quality 90, {args.rounds} alternated rounds')
    for name in names:
        print(f'{name:<40}{np.median(times[name]):>8.2f} ms/image (median)')
    with tempfile.TemporaryDirectory() as folder:
        print('EXIF orientation 6 on a 64x32 (w x h) image:')
        print(exif_behaviour(folder))


class _MemoryDataset(torch.utils.data.Dataset):
    """Cycles over the JPEGs through a pipeline; every ``every`` items reports the RSS."""

    def __init__(self, pipeline_cfg: list, paths: List[str], length: int, every: int):
        self.pipeline_cfg, self.paths, self.length, self.every = pipeline_cfg, paths, length, every
        self.pipeline = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if self.pipeline is None:  # built in the worker, as mmengine's datasets are
            self.pipeline = build_view_pipeline(self.pipeline_cfg)
        seed_all(index)
        out = self.pipeline(dict(img_path=self.paths[index % len(self.paths)]))
        assert len(out['inputs']) == 6
        return index, (_rss_mib() if index % self.every == 0 else -1.)


def _rss_mib() -> float:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.
    return float('nan')


def mode_memory(args, paths: List[str]) -> None:
    every = max(1, args.memory_images // 20)
    dataset = _MemoryDataset(config_pipeline(), paths, args.memory_images, every)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=1,
                                         worker_init_fn=lambda _: one_core())
    samples = []
    start = time.perf_counter()
    for index, rss in loader:
        if rss >= 0:
            samples.append((int(index), float(rss)))
    seconds = time.perf_counter() - start
    print(f'memory: 1 DataLoader worker, configs/knn_moco_coco.py pipeline, '
          f'{args.memory_images} images ({len(paths)} JPEGs cycled), {seconds:.0f} s')
    print('  images  worker RSS (MiB)')
    for index, rss in samples:
        print(f'  {index:>6}  {rss:8.1f}')
    warm = [rss for index, rss in samples if index >= min(1000, args.memory_images // 10)]
    if len(warm) >= 2:
        span = samples[-1][0] - samples[-len(warm)][0]
        print(f'RSS after warm-up {warm[0]:.1f} MiB, at the end {warm[-1]:.1f} MiB, '
              f'growth {warm[-1] - warm[0]:+.1f} MiB over {span} images '
              f'(peak {max(warm):.1f})')


def mode_profile(args, paths: List[str]) -> None:
    if args.profile_target == 'fast':
        pipeline = build_view_pipeline(config_pipeline())
    elif args.profile_target == 'previous':
        pipeline = build_view_pipeline(previous_pipeline())
    else:
        pipeline = ReleaseStyleViews()
    run_all(pipeline, paths[:6], args.seed)
    profile = cProfile.Profile()
    profile.enable()
    seconds = run_all(pipeline, paths, args.seed)
    profile.disable()
    print(f'profile of {args.profile_target}: {len(paths)} images, {seconds:.2f} s '
          'under cProfile')
    pstats.Stats(profile).sort_stats('tottime').print_stats(args.profile_lines)


def mode_variants(args, paths: List[str]) -> None:
    load, pack = dict(type='StrictLoadImageFromFile'), dict(type='PackInputs')
    moco_v2_view = [
        dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.), backend='pillow')
    ] + moco_v2_view_transforms()
    cfgs = {
        'MoCo-v2 2x224': [load, dict(type='MultiView', num_views=2,
                                     transforms=[moco_v2_view]), pack],
        'MC 2x160+4x96': previous_pipeline(a_plus=False, constrained=False),
        'CC 2x160+4x96': previous_pipeline(a_plus=False),
        'CC + A+': previous_pipeline(),
    }
    built = {name: build_view_pipeline(cfg) for name, cfg in cfgs.items()}
    for pipeline in built.values():
        run_all(pipeline, paths[:4], args.seed)
    names = list(built)
    seconds = {name: [] for name in names}
    for round_index in range(args.rounds):
        for name in (names if round_index % 2 == 0 else names[::-1]):
            seconds[name].append(run_all(built[name], paths, args.seed))
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    mc = 'MC 2x160+4x96'
    print(f'{"pipeline":<16}{"images/s":>10}{"vs MC":>8}')
    for name in names:
        print(f'{name:<16}{len(paths) / median[name]:>10.1f}{median[name] / median[mc]:>8.3f}')
    print(f'CC costs {100 * (median["CC 2x160+4x96"] / median[mc] - 1):+.1f}% over MC '
          '(target <= +5%).')


DEVICE_CONFIG = 'configs/knn_moco_coco_device_aug.py'


def mode_device(args, paths: List[str]) -> None:
    """The accelerator path: workers decode + crop + resize; the preprocessor augments."""
    from mmengine.config import Config
    from mmengine.dataset import default_collate
    from mmpretrain.registry import MODELS
    built = {
        'decode+crop (device)': build_view_pipeline(config_pipeline(DEVICE_CONFIG)),
        'release-style': ReleaseStyleViews(),
    }
    names = list(built)
    rates = alternated_rates(built, paths, args.seed, args.rounds)
    worker, release = np.array(rates[names[0]]), np.array(rates['release-style'])
    ratios = worker / release
    print(f'{len(paths)} JPEGs 640x480 (synthetic, quality 90), {args.rounds} alternated '
          f'rounds, one core; CC + A+, 2 x 160 + 4 x 96; worker side of {DEVICE_CONFIG}')
    print_rates(rates, width=22)
    print(f'ratio device-workers/release = {np.median(ratios):.2f} (median of per-round '
          f'ratios; range {ratios.min():.2f}-{ratios.max():.2f}; target >= 3)')

    # Device side: the preprocessor's augmentation + normalisation of one collated batch.
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(osp.join(ROOT, DEVICE_CONFIG))
    preprocessor = MODELS.build(cfg.model.data_preprocessor).to(device)
    samples = []
    for index in range(args.device_batch):
        seed_all(args.seed + index)
        samples.append(built[names[0]](dict(img_path=paths[index % len(paths)])))
    batch = default_collate(samples)

    def step() -> float:
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = preprocessor(batch, training=True)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        assert len(out['inputs']) == 6
        return time.perf_counter() - start

    torch.manual_seed(args.seed)
    step()  # warm-up: lazy kernels, caches
    times = np.array([step() for _ in range(args.device_rounds)])
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
             'one CPU thread, no GPU in this session')
    print(f'device-side augmentation on {device.type}: {1000 * np.median(times):.1f} ms per '
          f'batch of {args.device_batch} x (2 x 160 + 4 x 96) (median of {args.device_rounds}; '
          f'{where}; includes the host-to-device copy)')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mode', default='release',
                        choices=['release', 'decode', 'memory', 'profile', 'variants',
                                 'device'])
    parser.add_argument('--num-images', type=int, default=60)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--with-previous', action='store_true',
                        help='release mode: also time the previous mmcv/Pillow pipeline')
    parser.add_argument('--memory-images', type=int, default=10000,
                        help='memory mode: images through the worker')
    parser.add_argument('--profile-target', default='fast',
                        choices=['fast', 'previous', 'release'])
    parser.add_argument('--profile-lines', type=int, default=15)
    parser.add_argument('--device-batch', type=int, default=128,
                        help='device mode: images per batch of the device-side timing')
    parser.add_argument('--device-rounds', type=int, default=3,
                        help='device mode: timed batches on the device side')
    args = parser.parse_args(argv)
    where = one_core()
    print(f'machine: {os.cpu_count()} CPUs, running on {where}; torch {torch.__version__}, '
          f'OpenCV {cv2.__version__}, Pillow {Image.__version__}')
    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(folder, args.num_images, args.seed)
        dict(release=mode_release, decode=mode_decode, memory=mode_memory,
             profile=mode_profile, variants=mode_variants,
             device=mode_device)[args.mode](args, paths)


if __name__ == '__main__':
    main()
