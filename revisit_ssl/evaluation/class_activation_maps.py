"""Class activation maps of a linear probe on a frozen backbone (the kNN-MoCo paper's
Figure 6).

`Zhou et al., Learning Deep Features for Discriminative Localization, CVPR 2016
<https://arxiv.org/abs/1512.04150>`_: with global average pooling before a linear classifier,
the logit of class ``c`` is ``sum_k w_ck mean_xy f_k(x, y) + b_c``, so
``M_c(x, y) = sum_k w_ck f_k(x, y)`` says where in the image the evidence for ``c`` lies, and
its spatial mean is the logit minus the bias. The probe here is the one
``tools/analysis/linear_probe.py --save-probe`` writes (:func:`~revisit_ssl.evaluation.
export_probe`): the feature standardisation is folded into ``W`` and ``b``, and the pooled
feature is L2-normalised first, a positive factor ``s = 1 / ||mean_xy f||`` per image that
scales the map without moving it (``M_c = s sum_k w_ck f_k``, so ``mean M_c = logit_c - b_c``
still holds).
"""
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    'load_probe', 'probe_logits', 'class_activation_map', 'upsample_cam',
    'normalize_cam', 'overlay_cam', 'cam_grid', 'GRID_HEADER', 'GRID_CAPTION'
]

#: Height in pixels of the grid's column-title strip.
GRID_HEADER = 20
#: Height in pixels of the caption strip under each tile.
GRID_CAPTION = 16


def load_probe(path: str) -> dict:
    """A probe file of ``linear_probe.py --save-probe``, checked.

    Args:
        path (str): The file.

    Returns:
        dict: ``weight`` ``(C, D)``, ``bias`` ``(C,)`` (float tensors), ``classes`` and
        ``meta`` (``features.l2_normalize``, ``pipeline``, ``config``, ``checkpoint``).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'probe file {path!r} does not exist; write one with '
            'tools/analysis/linear_probe.py CONFIG CHECKPOINT ... --save-probe '
            'FILE and pass it as --probe FILE')
    probe = torch.load(path, map_location='cpu', weights_only=True)
    missing = [k for k in ('weight', 'bias', 'classes') if k not in probe]
    if missing:
        raise KeyError(f'{path!r} is not a probe of linear_probe.py '
                       f'--save-probe: it lacks {missing}')
    weight, bias = probe['weight'].float(), probe['bias'].float()
    if weight.ndim != 2 or bias.shape != (weight.shape[0], ) or len(
            probe['classes']) != weight.shape[0]:
        raise ValueError(
            f'{path!r}: weight {tuple(weight.shape)}, bias '
            f'{tuple(bias.shape)} and {len(probe["classes"])} classes do '
            'not fit together')
    probe.update(weight=weight, bias=bias)
    probe.setdefault('meta', {})
    return probe


def _pooled_scale(feature_map: torch.Tensor,
                  l2_normalize: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    pooled = feature_map.float().mean(dim=(-2, -1))  # (N, D), global average pooling
    if not l2_normalize:
        return pooled, torch.ones(pooled.shape[0], device=pooled.device)
    # F.normalize's eps, so the factor is the one FeatureExtractor applied
    return pooled, 1.0 / pooled.norm(dim=1).clamp_min(1e-12)


def probe_logits(feature_map: torch.Tensor,
                 weight: torch.Tensor,
                 bias: torch.Tensor,
                 l2_normalize: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The probe's logits on the globally average-pooled feature map.

    Args:
        feature_map (torch.Tensor): ``(N, D, h, w)`` last-stage features.
        weight (torch.Tensor): ``(C, D)`` probe weights (standardisation folded in).
        bias (torch.Tensor): ``(C,)`` probe bias.
        l2_normalize (bool): The probe was fitted on L2-normalised pooled features.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Logits ``(N, C)`` and the per-image factor
        ``s`` ``(N,)`` the pooled feature was scaled by (1 without normalisation).
    """
    if feature_map.shape[1] != weight.shape[1]:
        raise ValueError(
            f'the backbone gives {feature_map.shape[1]}-d features but the '
            f'probe has {weight.shape[1]} weights per class: it was fitted on '
            'another backbone (pass the probe saved for this checkpoint)')
    pooled, scale = _pooled_scale(feature_map, l2_normalize)
    return (pooled * scale[:, None]) @ weight.float().T + bias.float(), scale


def class_activation_map(feature_map: torch.Tensor,
                         weight: torch.Tensor,
                         class_index: Sequence[int],
                         scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``M_c(x, y) = s sum_k w_ck f_k(x, y)`` for one class per image.

    Args:
        feature_map (torch.Tensor): ``(N, D, h, w)``.
        weight (torch.Tensor): ``(C, D)``.
        class_index (Sequence[int]): ``N`` class indices.
        scale (torch.Tensor, optional): ``(N,)`` per-image factor (from
            :func:`probe_logits`). Defaults to 1.

    Returns:
        torch.Tensor: ``(N, h, w)`` maps; their spatial mean is the logit minus the bias.
    """
    rows = weight.float()[torch.as_tensor(
        list(class_index), dtype=torch.long, device=weight.device)]
    cams = torch.einsum('nd,ndhw->nhw', rows, feature_map.float())
    if scale is not None:
        cams = cams * scale.float()[:, None, None]
    return cams


def upsample_cam(cam: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling (``align_corners=False``) of ``(h, w)`` or ``(N, h, w)`` maps to
    ``size = (H, W)``."""
    squeeze = cam.ndim == 2
    cam = cam[None] if squeeze else cam
    out = F.interpolate(cam[:, None].float(), size=tuple(size),
                        mode='bilinear', align_corners=False)[:, 0]
    return out[0] if squeeze else out


def normalize_cam(cam: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map to ``[0, 1]`` (Zhou et al.'s display); a constant map
    becomes zeros."""
    squeeze = cam.ndim == 2
    cam = cam[None] if squeeze else cam
    flat = cam.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    span = (flat.max(dim=1).values[:, None, None] - low)
    out = torch.where(span > 0, (cam - low) / span.clamp_min(1e-12),
                      torch.zeros_like(cam))
    return out[0] if squeeze else out


def overlay_cam(image_bgr: np.ndarray, cam01: np.ndarray,
                alpha: float = 0.5) -> np.ndarray:
    """The JET-coloured map blended over the image (``alpha`` of the map).

    Args:
        image_bgr (np.ndarray): ``(H, W, 3)`` uint8, OpenCV order.
        cam01 (np.ndarray): ``(H, W)`` map in ``[0, 1]``.
        alpha (float): Weight of the heat map. Defaults to 0.5.
    """
    if image_bgr.shape[:2] != cam01.shape:
        raise ValueError(f'image {image_bgr.shape[:2]} and map {cam01.shape} '
                         'differ in size')
    heat = cv2.applyColorMap(
        np.clip(cam01 * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(heat, alpha, image_bgr, 1 - alpha, 0)


def _text(canvas: np.ndarray, text: str, x: int, y: int, width: int) -> None:
    # shrink the font until the text fits the tile
    scale = 0.4
    while scale > 0.2 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                          scale, 1)[0][0] > width - 4:
        scale -= 0.05
    cv2.putText(canvas, text, (x + 2, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), 1, cv2.LINE_AA)


def cam_grid(rows: List[List[np.ndarray]],
             captions: List[List[str]],
             titles: Sequence[str],
             tile: int) -> np.ndarray:
    """One picture: a title strip, then per image a row of tiles with a caption under each.

    Args:
        rows (list[list[np.ndarray]]): Per image, the tiles (``(h, w, 3)`` uint8 BGR): the
            image, then one CAM overlay per checkpoint. Each is resized to ``tile``.
        captions (list[list[str]]): One caption per tile.
        titles (Sequence[str]): One title per column.
        tile (int): Tile side in pixels.

    Returns:
        np.ndarray: ``(GRID_HEADER + len(rows) * (tile + GRID_CAPTION), len(titles) * tile,
        3)`` uint8, white background.
    """
    cols = len(titles)
    if any(len(r) != cols for r in rows) or any(len(c) != cols
                                                for c in captions):
        raise ValueError(f'every row needs {cols} tiles and captions')
    height = GRID_HEADER + len(rows) * (tile + GRID_CAPTION)
    canvas = np.full((height, cols * tile, 3), 255, np.uint8)
    for j, title in enumerate(titles):
        _text(canvas, title, j * tile, GRID_HEADER - 6, tile)
    for i, (row, caps) in enumerate(zip(rows, captions)):
        top = GRID_HEADER + i * (tile + GRID_CAPTION)
        for j, (img, cap) in enumerate(zip(row, caps)):
            canvas[top:top + tile, j * tile:(j + 1) * tile] = cv2.resize(
                img, (tile, tile), interpolation=cv2.INTER_LINEAR)
            _text(canvas, cap, j * tile, top + tile + GRID_CAPTION - 4, tile)
    return canvas
