"""Video instance segmentation without fine-tuning: label propagation with frozen features.

The protocol of Jabri et al. 2020 ("Space-Time Correspondence as a Contrastive Random Walk",
https://arxiv.org/abs/2006.14613; its ``code/test.py`` and ``code/utils/test_utils.py``), which
the kNN-MoCo paper (https://arxiv.org/abs/2106.05967, Tables 3 and 5) runs with its weights:

1. Every frame goes through the frozen backbone at its native size; the feature map (stride 8)
   is L2-normalised per pixel.
2. The first frame's annotation becomes one channel per object id (background included),
   bilinearly resized to the feature map: soft labels.
3. Frame t (t = 1, 2, ...) reads from a context of the first frame plus the 20 frames before
   it. Like the reference, the 20-frame window is always full: before frame 20 its missing
   frames are copies of frame 0. Each target pixel takes the **top-10** context pixels by
   feature dot product over the whole context (not per frame), restricted to a **spatial
   radius of 12** feature cells (Euclidean, strict ``<``) in the 20 recent frames but not in
   the first frame, softmax-weights their affinities at **temperature 0.05** and averages
   their soft labels. The result is frame t's soft label, used as context later (the first
   frame keeps its annotation).
4. Soft labels are bilinearly upsampled to the frame and arg-maxed into object ids.

The dense-feature helpers here work on any ``(T, C, h, w)`` tensor, so a stub feature (one-hot
colours, say) checks the propagation exactly; :func:`propagate_davis_sequence` runs the whole
protocol on one sequence of a DAVIS-2017 folder
(``JPEGImages/480p/<seq>/*.jpg``, ``Annotations/480p/<seq>/*.png``, ``ImageSets/2017/<split>.txt``).
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from revisit_ssl.utils.palette import voc_palette
from revisit_ssl.utils.progress import progress_bar

__all__ = [
    'CRW_TOPK', 'CRW_CONTEXT', 'CRW_RADIUS', 'CRW_TEMPERATURE',
    'DAVISSequence', 'context_frames', 'radius_mask', 'labels_to_onehot',
    'resize_soft_labels', 'soft_labels_to_ids', 'propagate_labels',
    'load_davis_split', 'read_frames', 'read_annotation', 'read_palette',
    'default_palette', 'write_index_png', 'extract_frame_features',
    'propagate_davis_sequence', 'backbone_stride8_overrides'
]

#: Reference settings of Jabri et al.'s README command: ``--topk 10 --videoLen 20 --radius 12
#: --temperature 0.05 --cropSize -1`` (native frame size).
CRW_TOPK = 10
CRW_CONTEXT = 20
CRW_RADIUS = 12.0
CRW_TEMPERATURE = 0.05
# Added to affinities outside the radius, as the reference does (finite, so a target with fewer
# allowed keys than k still gets weights, all on the allowed ones).
_MASKED = -1e10

# --------------------------------------------------------------------------- propagation


def context_frames(t: int,
                   n_context: int = CRW_CONTEXT,
                   long_memory: Sequence[int] = (0, ),
                   pad: bool = True) -> Tuple[List[int], List[int]]:
    """Context of target frame ``t``: ``(long-term frames, recent frames)``.

    Args:
        t (int): Target frame (>= 1).
        n_context (int): Recent frames. Defaults to 20.
        long_memory (Sequence[int]): Frames always in the context, without the radius
            restriction. Defaults to (0,) (the annotated first frame).
        pad (bool): Keep ``n_context`` recent frames by repeating frame 0 before frame
            ``n_context`` (the reference's behaviour; the copies can fill the top-k). False uses
            only the frames that exist, without repeating a long-term frame. Defaults to True.
    """
    if t < 1:
        raise ValueError(f'target frame must be >= 1, got {t}')
    if n_context < 1:
        raise ValueError(f'n_context must be >= 1, got {n_context}')
    long_ids = [f for f in long_memory if f < t]
    if pad:
        recent = [max(0, t - n_context + j) for j in range(n_context)]
    else:
        recent = [
            f for f in range(max(0, t - n_context), t) if f not in long_ids
        ]
    return long_ids, recent


def radius_mask(h: int,
                w: int,
                radius: float,
                device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """``(h*w, h*w)`` bool: key cell i may feed query cell j (grid distance < ``radius``)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device),
                            torch.arange(w, device=device),
                            indexing='ij')
    coords = torch.stack([ys.flatten(), xs.flatten()], 1).float()
    return torch.cdist(coords, coords) < radius


def labels_to_onehot(label_map: np.ndarray,
                     ids: Sequence[int]) -> torch.Tensor:
    """``(K, H, W)`` float one-hot of an id map over ``ids`` (pixels of other ids: all zero)."""
    label_map = torch.as_tensor(np.asarray(label_map).astype(np.int64))
    return torch.stack([(label_map == i) for i in ids]).float()


def resize_soft_labels(labels: torch.Tensor, size: Tuple[int,
                                                         int]) -> torch.Tensor:
    """Bilinear resize of ``(K, H, W)`` soft labels (half-pixel centres, OpenCV's
    ``INTER_LINEAR`` convention, which the reference uses both ways)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels.clone()
    return F.interpolate(labels[None].float(),
                         size=tuple(size),
                         mode='bilinear',
                         align_corners=False)[0]


def soft_labels_to_ids(labels: torch.Tensor, size: Tuple[int, int],
                       ids: Sequence[int]) -> np.ndarray:
    """Upsample ``(K, h, w)`` soft labels to ``size`` and take the arg-max id, ``(H, W)``."""
    up = resize_soft_labels(labels, size)
    lut = torch.as_tensor(list(ids), dtype=torch.int64, device=up.device)
    return lut[up.argmax(0)].cpu().numpy()


@torch.no_grad()
def propagate_labels(feats: torch.Tensor,
                     first_labels: torch.Tensor,
                     topk: int = CRW_TOPK,
                     n_context: int = CRW_CONTEXT,
                     radius: float = CRW_RADIUS,
                     temperature: float = CRW_TEMPERATURE,
                     long_memory: Sequence[int] = (0, ),
                     pad_context: bool = True,
                     max_elements: Optional[int] = None,
                     progress: bool = False,
                     desc: str = 'propagating') -> torch.Tensor:
    """Propagate the first frame's soft labels through a video.

    Args:
        feats (torch.Tensor): ``(T, C, h, w)`` per-pixel features, L2-normalised over C (the
            affinity is their dot product).
        first_labels (torch.Tensor): ``(K, h, w)`` soft labels of frame 0.
        topk (int): Context pixels each target pixel averages. Defaults to 10.
        n_context (int): Recent frames in the context. Defaults to 20.
        radius (float): Spatial radius in feature cells for the recent frames. Defaults to 12.
        temperature (float): Softmax temperature of the top-k affinities. Defaults to 0.05.
        long_memory (Sequence[int]): Frames always in the context, unrestricted. Defaults
            to (0,).
        pad_context (bool): See :func:`context_frames`. Defaults to True.
        max_elements (int, optional): Affinity entries computed at once (target pixels are
            chunked so that keys x chunk stays below this). Defaults to 2**22 on the CPU (small
            blocks stay in cache) and 2**28 on a GPU.
        progress (bool): Progress bar over frames. Defaults to False.
        desc (str): Its label.

    Returns:
        torch.Tensor: ``(T, K, h, w)`` soft labels; frame 0 is ``first_labels``.
    """
    if feats.ndim != 4:
        raise ValueError(
            f'feats must be (T, C, h, w), got {tuple(feats.shape)}')
    num_frames, channels, h, w = feats.shape
    if first_labels.ndim != 3 or tuple(first_labels.shape[1:]) != (h, w):
        raise ValueError(
            f'first_labels must be (K, {h}, {w}) like the feature '
            f'map, got {tuple(first_labels.shape)}')
    if topk < 1 or temperature <= 0:
        raise ValueError(f'need topk >= 1 and temperature > 0, got {topk}, '
                         f'{temperature}')
    device = feats.device
    if max_elements is None:
        max_elements = 2**28 if device.type == 'cuda' else 2**22
    hw = h * w
    flat = feats.reshape(num_frames, channels, hw).float()
    num_labels = first_labels.shape[0]
    labels = torch.zeros(num_frames, num_labels, hw, device=device)
    labels[0] = first_labels.reshape(num_labels, hw).to(device).float()
    # (query, key) layout: top-k along the last, contiguous dimension
    allowed = radius_mask(h, w, radius, device).t().float().contiguous()
    for t in progress_bar(range(1, num_frames), desc, num_frames - 1, progress):
        long_ids, recent = context_frames(t, n_context, long_memory,
                                          pad_context)
        # Each context frame once, with how many copies of it the reference's context holds:
        # unrestricted ones (long memory) and radius-restricted ones (recent frames; padding
        # repeats frame 0). The top-k of the repeated list is rebuilt from the top-k of the
        # unique keys below, so the copies are never scored twice.
        ctx = sorted(set(long_ids) | set(recent))
        free = torch.tensor([float(long_ids.count(f)) for f in ctx],
                            device=device)
        near = torch.tensor([float(recent.count(f)) for f in ctx],
                            device=device)
        n_keys = len(ctx) * hw
        keys = flat[ctx].permute(1, 0, 2).reshape(channels, n_keys)
        ctx_labels = labels[ctx].permute(1, 0, 2).reshape(num_labels, n_keys)
        # k neighbours among the copies; the k best unique keys always hold them
        k = min(topk, (len(long_ids) + len(recent)) * hw)
        k_unique = min(k, n_keys)
        chunk = max(1, max_elements // n_keys)
        for q0 in range(0, hw, chunk):
            q1 = min(hw, q0 + chunk)
            # scaling the few queries, not the many affinities, by 1 / temperature
            aff = (flat[t, :, q0:q1].t() / temperature) @ keys  # (q, n_keys)
            # copies of each key in the context of each query: the radius restricts only
            # the recent frames, as in the reference
            copies = (free[:, None] +
                      near[:, None] * allowed[q0:q1, None, :]).reshape(
                          q1 - q0, n_keys)
            aff.masked_fill_(copies == 0, _MASKED / temperature)
            values, index = aff.topk(k_unique, dim=1)  # sorted, largest first
            # a key masked everywhere keeps one (weightless) copy, as in the reference
            count = copies.gather(1, index).clamp(min=1)
            taken = (k - (count.cumsum(1) - count)).clamp(min=0)
            count = torch.minimum(count, taken)
            weights = (values - values[:, :1]).exp() * count
            weights = weights / weights.sum(1, keepdim=True)
            labels[t, :, q0:q1] = (ctx_labels[:, index] * weights).sum(-1)
    return labels.view(num_frames, num_labels, h, w)


# --------------------------------------------------------------------------- DAVIS layout


@dataclass
class DAVISSequence:
    """One sequence of a DAVIS folder.

    Args:
        name (str): Sequence folder name.
        frames (list[str]): JPEG paths in frame order.
        annotations (list[str | None]): The annotation PNG of each frame (None where there is
            none; the first one always exists).
    """
    name: str
    frames: List[str]
    annotations: List[Optional[str]] = field(default_factory=list)

    @property
    def stems(self) -> List[str]:
        return [osp.splitext(osp.basename(p))[0] for p in self.frames]

    @property
    def fully_annotated(self) -> bool:
        return all(a is not None for a in self.annotations)


def load_davis_split(
        davis_root: str,
        split: str = 'val',
        resolution: str = '480p',
        sequences: Optional[Iterable[str]] = None) -> List[DAVISSequence]:
    """The sequences of ``ImageSets/2017/<split>.txt`` with their frames and annotations.

    Every problem names the flag that fixes it (``--davis-root``, ``--split``,
    ``--resolution``, ``--sequences``).
    """
    layout = ('JPEGImages/<resolution>/<seq>/%05d.jpg, '
              'Annotations/<resolution>/<seq>/%05d.png, '
              'ImageSets/2017/<split>.txt')
    if not osp.isdir(davis_root):
        raise FileNotFoundError(
            f'--davis-root {davis_root!r} is not a folder; pass the DAVIS-2017 '
            f'folder ({layout})')
    sets_dir = osp.join(davis_root, 'ImageSets', '2017')
    list_file = osp.join(sets_dir, f'{split}.txt')
    if not osp.isfile(list_file):
        found = sorted(
            osp.splitext(f)[0] for f in os.listdir(sets_dir)
            if f.endswith('.txt')) if osp.isdir(sets_dir) else []
        raise FileNotFoundError(
            f'{list_file} does not exist: --split {split!r} has no sequence '
            f'list under --davis-root ({layout}); splits found: '
            f'{found or "none"}')
    with open(list_file) as f:
        names = [line.strip() for line in f if line.strip()]
    if sequences is not None:
        wanted = list(sequences)
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise ValueError(f'--sequences {unknown} are not in {list_file}')
        names = wanted
    if not names:
        raise ValueError(f'{list_file} lists no sequence')
    out = []
    for name in names:
        img_dir = osp.join(davis_root, 'JPEGImages', resolution, name)
        ann_dir = osp.join(davis_root, 'Annotations', resolution, name)
        frames = sorted(
            osp.join(img_dir, f) for f in os.listdir(img_dir)
            if f.lower().endswith('.jpg')) if osp.isdir(img_dir) else []
        if not frames:
            raise FileNotFoundError(
                f'no frames in {img_dir} (sequence {name!r} of {list_file}); '
                f'--davis-root / --resolution must point at {layout}')
        annotations = []
        for path in frames:
            ann = osp.join(ann_dir,
                           osp.splitext(osp.basename(path))[0] + '.png')
            annotations.append(ann if osp.isfile(ann) else None)
        if annotations[0] is None:
            raise FileNotFoundError(
                f'{osp.join(ann_dir, osp.basename(frames[0])[:-4] + ".png")} '
                f'does not exist: the first frame of {name!r} needs its '
                f'annotation (--davis-root layout: {layout})')
        out.append(DAVISSequence(name, frames, annotations))
    return out


def read_frames(paths: Sequence[str]) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 BGR frames (mmcv's loading, as ``LoadImageFromFile``)."""
    import mmcv
    images = []
    for path in paths:
        img = mmcv.imread(path, channel_order='bgr')
        if img is None:
            raise ValueError(f'could not decode {path}')
        if images and img.shape != images[0].shape:
            raise ValueError(f'{path} is {img.shape[:2]}, the first frame of '
                             f'its sequence {images[0].shape[:2]}')
        images.append(torch.from_numpy(np.ascontiguousarray(img)))
    return torch.stack(images).permute(0, 3, 1, 2).contiguous()


def read_annotation(path: str) -> np.ndarray:
    """Object ids of a DAVIS annotation (palette or grey PNG), ``(H, W)`` int64."""
    from PIL import Image
    with Image.open(path) as img:
        if img.mode not in ('P', 'L', 'I', 'I;16'):
            raise ValueError(f'{path} is a {img.mode} image; a DAVIS '
                             'annotation is a palette PNG of object ids')
        return np.array(img).astype(np.int64)


def default_palette() -> List[int]:
    """The DAVIS / PASCAL colour map (id 1 red, 2 green, 3 yellow, ...), 256 x RGB."""
    return voc_palette()


def read_palette(path: str) -> List[int]:
    """The palette of an annotation PNG (the DAVIS colour map when it has none)."""
    from PIL import Image
    with Image.open(path) as img:
        palette = img.getpalette() if img.mode == 'P' else None
    return list(palette) if palette else default_palette()


def write_index_png(path: str, ids: np.ndarray,
                    palette: Sequence[int]) -> None:
    """Write an id map as a palette PNG (pixel value = object id)."""
    from PIL import Image
    ids = np.asarray(ids)
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise ValueError('object ids must lie in 0..255 for a palette PNG')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode='P')
    img.putpalette(list(palette))
    img.save(path)


@torch.no_grad()
def extract_frame_features(extractor: Callable[[torch.Tensor], torch.Tensor],
                           frames: torch.Tensor,
                           batch_size: int = 4,
                           progress: bool = False,
                           desc: str = 'features') -> torch.Tensor:
    """``(T, C, h, w)`` features of ``(T, 3, H, W)`` uint8 frames, ``batch_size`` at a time."""
    starts = list(range(0, len(frames), batch_size))
    feats = []
    for s in progress_bar(starts, desc, len(starts), progress):
        out = extractor(frames[s:s + batch_size])
        if out.ndim != 4:
            raise ValueError('the extractor must return dense (N, C, h, w) '
                             f'maps, got shape {tuple(out.shape)}')
        feats.append(out.float())
    return torch.cat(feats)


def propagate_davis_sequence(extractor: Callable[[torch.Tensor], torch.Tensor],
                             sequence: DAVISSequence,
                             out_dir: Optional[str] = None,
                             topk: int = CRW_TOPK,
                             n_context: int = CRW_CONTEXT,
                             radius: float = CRW_RADIUS,
                             temperature: float = CRW_TEMPERATURE,
                             pad_context: bool = True,
                             batch_size: int = 4,
                             device: Union[str, torch.device] = 'cpu',
                             progress: bool = False) -> dict:
    """Run the protocol on one sequence and write ``<out_dir>/<seq>/<frame>.png``.

    Args:
        extractor (Callable): Maps ``(N, 3, H, W)`` uint8 BGR frames to L2-normalised dense
            features ``(N, C, h, w)`` (e.g. a :class:`FeatureExtractor` with ``pool=False``).
        sequence (DAVISSequence): The sequence.
        out_dir (str, optional): Where the id PNGs go (palette of the first annotation); None
            writes nothing.
        topk, n_context, radius, temperature, pad_context: See :func:`propagate_labels`.
        batch_size (int): Frames per forward pass. Defaults to 4.
        device (str | torch.device): Where the propagation runs. Defaults to 'cpu'.
        progress (bool): Progress bars. Defaults to False.

    Returns:
        dict: ``pred`` ``(T, H, W)`` ids (frame 0 = its annotation), ``gt`` ``(T, H, W)`` or
        None when not every frame is annotated, ``object_ids``, ``feature_size`` and
        ``image_size``.
    """
    frames = read_frames(sequence.frames)
    height, width = frames.shape[-2:]
    first = read_annotation(sequence.annotations[0])
    if first.shape != (height, width):
        raise ValueError(f'{sequence.annotations[0]} is {first.shape}, its '
                         f'frame {(height, width)}')
    first = np.where(first == 255, 0, first)  # void is background (toolkit)
    ids = sorted(set(np.unique(first).tolist()) | {0})
    feats = extract_frame_features(
        extractor,
        frames,
        batch_size,
        progress,
        desc=f'{sequence.name}: features').to(device)
    h, w = feats.shape[-2:]
    first_soft = resize_soft_labels(labels_to_onehot(first, ids), (h, w))
    soft = propagate_labels(feats,
                            first_soft.to(device),
                            topk=topk,
                            n_context=n_context,
                            radius=radius,
                            temperature=temperature,
                            pad_context=pad_context,
                            progress=progress,
                            desc=f'{sequence.name}: propagating')
    pred = np.stack([first] + [
        soft_labels_to_ids(soft[t], (height, width), ids)
        for t in range(1, len(frames))
    ])
    if out_dir is not None:
        palette = read_palette(sequence.annotations[0])
        for stem, ids_map in zip(sequence.stems, pred):
            write_index_png(osp.join(out_dir, sequence.name, f'{stem}.png'),
                            ids_map, palette)
    gt = None
    if sequence.fully_annotated:
        gt = np.stack([read_annotation(a) for a in sequence.annotations])
        if gt.shape != pred.shape:
            raise ValueError(f'annotations of {sequence.name!r} are '
                             f'{gt.shape[1:]}, its frames {(height, width)}')
    return dict(pred=pred,
                gt=gt,
                object_ids=[i for i in ids if i != 0],
                feature_size=(int(h), int(w)),
                image_size=(int(height), int(width)))


# --------------------------------------------------------------------------- backbone


def backbone_stride8_overrides(backbone_cfg: dict,
                               layer: int = 3,
                               dilate: bool = False) -> dict:
    """Backbone keys for stride-8 features from ResNet stage ``layer`` (3 or 4).

    The reference (``code/resnet.py``, ``modify``) sets the strides of layer3 and layer4 to 1
    **without dilation** and removes layer4 (``--remove-layers layer4``, the default of its
    ``test.py``), so its features are layer3's (1024-d for ResNet-50). ``dilate=True`` dilates
    the stride-1 stages instead (2 and 4, DeepLab-style), keeping their receptive fields.

    Returns:
        dict: ``num_stages``, ``strides``, ``dilations``, ``out_indices`` (and
        ``frozen_stages=-1``) for mmpretrain's ResNet family; ``{}`` for a backbone without
        those arguments (it is used as it is).
    """
    import inspect
    from mmpretrain.registry import MODELS
    if layer not in (3, 4):
        raise ValueError(f'layer must be 3 or 4, got {layer}')
    backbone_cls = MODELS.get(backbone_cfg['type'])
    if backbone_cls is None:
        return {}
    params = inspect.signature(backbone_cls).parameters
    if not {'strides', 'dilations', 'num_stages', 'out_indices'
            } <= set(params):
        return {}
    strides = list(backbone_cfg.get('strides', params['strides'].default))
    if len(strides) != 4:
        return {}
    strides = [strides[0], strides[1], 1, 1][:layer]
    dilations = ([1, 1, 2, 4] if dilate else [1, 1, 1, 1])[:layer]
    return dict(num_stages=layer,
                strides=tuple(strides),
                dilations=tuple(dilations),
                out_indices=(layer - 1, ),
                frozen_stages=-1)
