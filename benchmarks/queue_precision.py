"""Backbone-queue precision: memory, speed and top-k agreement of float16 / bfloat16 vs float32.

``DualQueueHead(backbone_queue_dtype=...)`` stores the backbone queue (``backbone_dim x K``, the
momentum encoder's L2-normalised pooled features) in float32, float16 or bfloat16.
:func:`revisit_ssl.models.losses.find_neighbours` upcasts a half-precision queue in column
chunks and multiplies in float32, so only the storage is rounded; the previous
``find_neighbours`` multiplied in the storage dtype (``query.to(dtype) @ queue``), which rounds
the similarities to that dtype before the top-k. This script reports, for each dtype:

* memory: bytes of the queue at the paper's 2048 x 65536 (and, on a GPU, the allocator's count
  and the extra peak of one search with 640 queries);
* speed: median time of one search, 640 queries x 2048-d against K = 65536, k = 20;
* agreement with float32: for each query row, the share of its k = 20 neighbour indices that are
  the float32 ones (as sets), averaged over rows ("overlap"), the share of rows whose set is
  identical, and how much worse a substituted neighbour is (its float32 similarity below the
  float32 k-th neighbour's: "deficit"). Ways of searching a half-precision queue:

  - ``as implemented``: ``find_neighbours`` itself, on every device: the queue rounded to the
    dtype, everything else in float32. It is the same computation as upcasting the whole queue
    and multiplying once (``queries @ queue.float()``): on a CPU (1 thread) the two give
    bit-identical similarities and the same neighbours, in the same order, for every row of the
    image (random init, K 16384), clustered and random sets (K 65536, 640 queries), float16 and
    bfloat16. It isolates what the storage alone loses;
  - ``previous (half product)``: the previous search, ``queries.to(dtype) @ queue`` (similarities
    computed and rounded in the storage dtype). On a CPU it is emulated and labelled
    ``previous (emulated)`` (see below);
  - ``fp32 output``: the same half-precision operands, but the product written in float32
    (``torch.mm(..., out_dtype=torch.float32)``; CUDA only).

Feature sets (random unit vectors are not realistic: in 2048-d every similarity is near 0 and
the 20th and 21st neighbours are near-ties, so they are only a worst-case control):

* ``image``: pooled last-stage ResNet-18 features (512-d) of procedural demo scenes
  (:func:`revisit_ssl.utils.demo_scenes.draw_scene`), every queue entry and query a different
  scene, from ``--checkpoint`` (e.g. the momentum encoder of a short ``knn_moco_demo`` run) or
  from a randomly initialised ResNet-18;
* ``clustered``: 2048-d synthetic features shaped like pooled ResNet-50 features: non-negative
  (after a ReLU), sharing a common direction (random pairs have cosine ~0.4) and grouped in
  1000 clusters of different spreads (the top-20 neighbours have cosine ~0.6-0.8);
* ``random``: unit Gaussian vectors (the control).

On a CPU without native float16 / bfloat16 matrix products, torch's fallback is two orders of
magnitude slower than float32 (measured below), so the previous search is emulated there
(``previous (emulated)``): operands rounded to the dtype, product in float32, result rounded to
the dtype, which is what a GPU's half-precision GEMM does. ``--native-rows`` rows are also
searched with the real half-precision product (``check: native vs emulated``) to validate the
emulation, and timed in the memory / speed table (``previous (half product)``, scaled to 640
queries).

Needs only torch (plus numpy, OpenCV and torchvision for the image set): when mmpretrain is not
installed the project's functions are loaded from their files. Examples::

    python benchmarks/queue_precision.py                     # CPU; image set with K 16384
    python benchmarks/queue_precision.py --device cuda --features image,clustered,random \\
        --checkpoint work_dirs/r18_ema_backbone.pth --image-weights both
"""
import argparse
import importlib
import importlib.util
import multiprocessing
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
PAPER_QUERIES, PAPER_DIM, PAPER_K = 640, 2048, 65536
#: ImageNet mean / std of the configs' data preprocessor (RGB)
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def project_attr(module: str, name: str):
    """``module.name`` from the project; from its file alone if the package cannot be imported.

    ``import revisit_ssl`` needs the package installed (``pip install -e .``) and imports
    mmpretrain. The two functions used here need only torch / numpy / OpenCV, so on a machine
    with torch alone (a bare GPU box, a clone without an install) they are loaded straight from
    their source files in this clone.
    """
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AssertionError) as err:  # mmpretrain asserts its mmcv version
        print(f'({module}.{name} loaded from its file: {err})', file=sys.stderr)
        path = osp.join(ROOT, *module.split('.')) + '.py'
        spec = importlib.util.spec_from_file_location(f'_bench_{name}', path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return getattr(loaded, name)


find_neighbours = project_attr('revisit_ssl.models.losses.knn_loss', 'find_neighbours')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--features', default='image,clustered',
                        help='comma-separated subset of image, clustered, random')
    parser.add_argument('--queue-len', type=int, default=PAPER_K,
                        help='K of the clustered and random sets')
    parser.add_argument('--image-queue-len', type=int,
                        help='K of the image set (default 65536 on CUDA, 16384 on CPU: every '
                        'entry is a scene drawn and run through ResNet-18)')
    parser.add_argument('--num-queries', type=int, default=PAPER_QUERIES)
    parser.add_argument('--k', type=int, default=20)
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--checkpoint',
                        help='ResNet-18 weights for the image set: a torchvision-format state '
                        'dict (tools/model_converters/extract_backbone.py --format torchvision) '
                        'or a kNN-MoCo / MoCo checkpoint (the momentum encoder is used)')
    parser.add_argument('--image-weights', default='auto',
                        choices=['auto', 'checkpoint', 'random', 'both'],
                        help='auto: the checkpoint if given, else random initialisation')
    parser.add_argument('--workers', type=int,
                        help='processes drawing scenes (default: min(cores, 16))')
    parser.add_argument('--native-rows', type=int, default=8,
                        help='CPU: rows searched with the real half-precision product (the '
                        'previous search), to check its emulation and time it (0: skip)')
    parser.add_argument('--timing', action=argparse.BooleanOptionalAction, default=True,
                        help='time the search per dtype at 640 x 2048 x 65536')
    parser.add_argument('--repeats', type=int, default=3, help='timed searches per dtype')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads of torch')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    args.features = [f.strip() for f in args.features.split(',') if f.strip()]
    unknown = set(args.features) - {'image', 'clustered', 'random'}
    if unknown:
        parser.error(f'unknown feature sets {sorted(unknown)}')
    if args.image_queue_len is None:
        args.image_queue_len = PAPER_K if args.device.startswith('cuda') else 16384
    if args.image_weights == 'auto':
        args.image_weights = 'checkpoint' if args.checkpoint else 'random'
    if args.image_weights in ('checkpoint', 'both') and not args.checkpoint:
        parser.error(f'--image-weights {args.image_weights} needs --checkpoint')
    return args


# --------------------------------------------------------------------------- feature sets


def random_set(dim: int, queue_len: int, num_queries: int,
               g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit Gaussian queries ``(N, D)`` and queue ``(D, K)``."""
    queries = F.normalize(torch.randn(num_queries, dim, generator=g), dim=1)
    queue = F.normalize(torch.randn(dim, queue_len, generator=g), dim=0)
    return queries, queue


def clustered_set(dim: int, queue_len: int, num_queries: int, g: torch.Generator,
                  num_clusters: int = 1000) -> Tuple[torch.Tensor, torch.Tensor]:
    """Non-negative clustered features, shaped like pooled ResNet-50 outputs (see the docstring)."""
    common = 0.5 * torch.randn(dim, generator=g)
    centres = torch.randn(num_clusters, dim, generator=g)
    spread = 0.7 * (0.5 + torch.rand(num_clusters, generator=g))

    def draw(n: int) -> torch.Tensor:
        cluster = torch.randint(0, num_clusters, (n, ), generator=g)
        noise = torch.randn(n, dim, generator=g)
        return F.normalize(F.relu(common + centres[cluster] + spread[cluster, None] * noise),
                           dim=1)

    queue = torch.cat([draw(min(8192, queue_len - i)) for i in range(0, queue_len, 8192)])
    return draw(num_queries), queue.T.contiguous()


def _draw_chunk(task: Tuple[int, int, int, int]):
    """Worker: demo scenes ``start..stop`` as one ``(n, H, W, 3)`` RGB uint8 array."""
    import numpy as np
    draw_scene = project_attr('revisit_ssl.utils.demo_scenes', 'draw_scene')
    start, stop, size, seed = task
    images = [draw_scene(np.random.default_rng([seed, 1009, i]), (size, size)).image
              for i in range(start, stop)]
    return np.stack(images)[..., ::-1].copy()  # BGR -> RGB, as the preprocessor's to_rgb


def resnet18_trunk(checkpoint: Optional[str], seed: int) -> torch.nn.Module:
    """torchvision ResNet-18 without ``fc``; mmpretrain's ResNet-18 keys are the same names."""
    import torchvision
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    if checkpoint:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state)
        for prefix in ('momentum_encoder.module.0.', 'encoder_k.module.0.', 'backbone.', ''):
            picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if 'conv1.weight' in picked:
                break
        picked = {k: v.float() if v.is_floating_point() else v for k, v in picked.items()
                  if not k.startswith('fc.')}
        missing, unexpected = model.load_state_dict(picked, strict=False)
        if missing or unexpected:
            raise ValueError(f'{checkpoint} is not a ResNet-18: missing {missing[:3]}, '
                             f'unexpected {unexpected[:3]}')
    return model.eval()


@torch.no_grad()
def image_set(queue_len: int, num_queries: int, size: int, model: torch.nn.Module,
              device: torch.device, workers: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pooled, L2-normalised ResNet-18 features of ``queue_len + num_queries`` distinct scenes."""
    total, chunk = queue_len + num_queries, 1024
    tasks = [(i, min(i + chunk, total), size, seed) for i in range(0, total, chunk)]
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    feats = []
    with multiprocessing.get_context('fork').Pool(workers) as pool:
        for images in pool.imap(_draw_chunk, tasks):
            x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
            feats.append(F.normalize(model((x - mean) / std), dim=1))
    feats = torch.cat(feats)
    return feats[queue_len:], feats[:queue_len].T.contiguous()


# --------------------------------------------------------------------------- searches


def topk_fp32(queries: torch.Tensor, queue: torch.Tensor, k: int) -> torch.Tensor:
    return (queries @ queue).topk(k, dim=1).indices


def search_previous(queries: torch.Tensor, queue_half: torch.Tensor, k: int) -> torch.Tensor:
    """The previous ``find_neighbours``: the product in the storage dtype, rounded similarities."""
    return (queries.to(queue_half.dtype) @ queue_half).topk(k, dim=1).indices


def search_previous_emulated(queries: torch.Tensor, queue_half: torch.Tensor,
                             k: int) -> torch.Tensor:
    """:func:`search_previous` as a GPU's half GEMM computes it, at float32 speed on a CPU.

    Rounded operands, float32 accumulation, output rounded to the storage dtype.
    """
    dtype = queue_half.dtype
    sims = queries.to(dtype).float() @ queue_half.float()
    return sims.to(dtype).topk(k, dim=1).indices


def search_fp32_output(queries: torch.Tensor, queue_half: torch.Tensor,
                       k: int) -> torch.Tensor:
    sims = torch.mm(queries.to(queue_half.dtype), queue_half, out_dtype=torch.float32)
    return sims.topk(k, dim=1).indices


def agreement(ref: torch.Tensor, got: torch.Tensor, sims32: torch.Tensor) -> Dict[str, float]:
    """Overlap of index sets per row, identical rows, and the similarity deficit of swaps."""
    k = ref.shape[1]
    same = (got.unsqueeze(2) == ref.unsqueeze(1)).any(dim=2)  # (N, k): got[i, j] in ref[i]
    overlap = same.float().sum(dim=1) / k
    kth = sims32.gather(1, ref[:, -1:]).squeeze(1)
    worst = sims32.gather(1, got).min(dim=1).values
    deficit = (kth - worst).clamp(min=0)
    return dict(overlap=100 * overlap.mean().item(),
                identical=100 * (overlap == 1).float().mean().item(),
                deficit_median=deficit.median().item(), deficit_max=deficit.max().item())


def set_stats(sims: torch.Tensor, k: int) -> str:
    top = sims.topk(k + 1, dim=1).values
    gap = (top[:, k - 1] - top[:, k]).median().item()
    return (f'mean cosine {sims.mean().item():.3f}, top-1 {top[:, 0].mean().item():.3f}, '
            f'top-{k} {top[:, k - 1].mean().item():.3f}, median gap between neighbour {k} and '
            f'{k + 1} {gap:.1e}')


def report_set(name: str, queries: torch.Tensor, queue: torch.Tensor, args: argparse.Namespace,
               device: torch.device) -> None:
    k = args.k
    sims32 = queries @ queue
    print(f'\n[{name}] {queries.shape[0]} queries, {queue.shape[0]}-d, K {queue.shape[1]}: '
          f'{set_stats(sims32, k)}')
    ref = sims32.topk(k, dim=1).indices
    searches: List[Tuple[str, Callable]] = [('as implemented', find_neighbours)]
    if device.type == 'cuda':
        searches += [('previous (half product)', search_previous),
                     ('fp32 output', search_fp32_output)]
    else:  # a CPU's half product can be ~270x slower (float16): checked on a few rows below
        searches.append(('previous (emulated)', search_previous_emulated))
    print(f'{"dtype":<10}{"search":<28}{"overlap %":>10}{"identical rows %":>18}'
          f'{"deficit median":>16}{"deficit max":>13}')
    for dtype_name in ('float16', 'bfloat16'):
        queue_half = queue.to(DTYPES[dtype_name])
        for label, search in searches:
            try:
                got = search(queries, queue_half, k)
            except (RuntimeError, TypeError) as err:  # e.g. no out_dtype in an old torch
                print(f'{dtype_name:<10}{label:<28}not available: {str(err).splitlines()[0]}')
                continue
            a = agreement(ref, got, sims32)
            print(f'{dtype_name:<10}{label:<28}{a["overlap"]:>10.2f}{a["identical"]:>18.1f}'
                  f'{a["deficit_median"]:>16.1e}{a["deficit_max"]:>13.1e}')
        if device.type == 'cpu' and args.native_rows > 0:
            rows = queries[:args.native_rows]
            native = search_previous(rows, queue_half, k)
            emulated = search_previous_emulated(rows, queue_half, k)
            a = agreement(emulated, native, rows @ queue_half.float())
            print(f'{dtype_name:<10}{"check: native vs emulated":<28}{a["overlap"]:>10.2f}'
                  f'{a["identical"]:>18.1f}   ({args.native_rows} rows)')


# --------------------------------------------------------------------------- memory / speed


def _time_search(search: Callable, queries: torch.Tensor, queue: torch.Tensor, k: int,
                 repeats: int, device: torch.device) -> Tuple[float, Optional[float]]:
    """Median seconds of ``search`` and, on a GPU, the MiB it allocates on top (its peak)."""
    cuda = device.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if repeats > 1:  # warm-up (kernel selection, allocator)
        search(queries, queue, k)
    peak = None
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        search(queries, queue, k)
        sync()
        seconds.append(time.perf_counter() - start)
    if cuda:
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return statistics.median(seconds), peak


def memory_and_speed(args: argparse.Namespace, device: torch.device) -> None:
    """Queue bytes per dtype, and time / extra memory of one paper-scale search."""
    cuda = device.type == 'cuda'
    measure = cuda or args.timing  # else the CPU table is the byte count alone
    if measure:
        g = torch.Generator().manual_seed(args.seed)
        queries, queue32 = random_set(PAPER_DIM, PAPER_K, PAPER_QUERIES, g)
        queries, queue32 = queries.to(device), queue32.to(device)
    print(f'\nbackbone queue {PAPER_DIM} x {PAPER_K}, search with {PAPER_QUERIES} queries, '
          f'k {args.k}')
    print(f'{"dtype":<10}{"search":<26}{"queue MiB":>10}{"allocated MiB":>15}'
          f'{"search peak +MiB":>18}  search ms')
    for dtype_name, dtype in DTYPES.items():
        nbytes = PAPER_DIM * PAPER_K * torch.empty((), dtype=dtype).element_size()
        before = torch.cuda.memory_allocated(device) if cuda else 0
        queue = queue32.to(dtype, copy=True) if measure else None
        allocated = (f'{(torch.cuda.memory_allocated(device) - before) / 2**20:.0f}'
                     if cuda else '-')
        # float32 storage: one float32 product; half storage: float32 products of upcast
        # chunks (both find_neighbours), and the previous search's half-precision product
        searches: List[Tuple[str, Callable]] = [('as implemented', find_neighbours)]
        if dtype != torch.float32:
            searches.append(('previous (half product)', search_previous))
            if cuda:
                searches.append(('fp32 output', search_fp32_output))
        for label, search in searches:
            timing, peak = '-', None
            rows, repeats = (queries, args.repeats) if args.timing else (None, 0)
            if rows is not None and not cuda and search is search_previous:
                # CPU half GEMMs can be very slow: one call on a few rows, scaled to 640
                rows, repeats = queries[:args.native_rows], 1
                if args.native_rows <= 0:
                    timing, rows = 'not timed (--native-rows 0)', None
            if rows is not None:
                try:
                    seconds, peak = _time_search(search, rows, queue, args.k, repeats, device)
                except (RuntimeError, TypeError) as err:
                    timing = f'not available: {str(err).splitlines()[0]}'
                else:
                    scale = PAPER_QUERIES / rows.shape[0]
                    timing = f'{seconds * scale * 1e3:.1f}'
                    if scale != 1:
                        timing += f' (x{scale:.0f} from {rows.shape[0]} rows)'
            peak_text = '-' if peak is None else f'{peak:.0f}'
            print(f'{dtype_name:<10}{label:<26}{nbytes / 2**20:>10.0f}{allocated:>15}'
                  f'{peak_text:>18}  {timing}')
        del queue


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if device.type == 'cuda':
        # float32 reference products must be float32, not TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        where = torch.cuda.get_device_name(device)
    else:
        where = f'CPU, {args.threads} thread(s)'
    print(f'device: {where}; torch {torch.__version__}; k {args.k}')
    memory_and_speed(args, device)

    g = torch.Generator().manual_seed(args.seed)
    for name in args.features:
        if name == 'random':
            report_set('random unit vectors (control)',
                       *(t.to(device) for t in random_set(
                           PAPER_DIM, args.queue_len, args.num_queries, g)), args, device)
        elif name == 'clustered':
            report_set('clustered synthetic',
                       *(t.to(device) for t in clustered_set(
                           PAPER_DIM, args.queue_len, args.num_queries, g)), args, device)
        else:
            workers = args.workers or max(1, min(os.cpu_count() or 1, 16))
            weights = ['checkpoint', 'random'] if args.image_weights == 'both' else [
                args.image_weights]
            for which in weights:
                start = time.perf_counter()
                model = resnet18_trunk(args.checkpoint if which == 'checkpoint' else None,
                                       args.seed).to(device)
                queries, queue = image_set(args.image_queue_len, args.num_queries,
                                           args.image_size, model, device, workers, args.seed)
                source = args.checkpoint if which == 'checkpoint' else 'random init'
                print(f'\n(image features: {args.image_queue_len + args.num_queries} scenes at '
                      f'{args.image_size} px through ResNet-18 ({source}) in '
                      f'{time.perf_counter() - start:.0f} s)')
                report_set(f'image, ResNet-18 {which}', queries, queue, args, device)


if __name__ == '__main__':
    main()
