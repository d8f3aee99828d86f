"""Class activation maps of linear probes on frozen backbones, side by side (paper Figure 6).

Per image and checkpoint: the last-stage feature map of the frozen backbone, the probe's
logits on its global average (the class it predicts, or ``--class``), and the class activation
map ``sum_k w_ck f_k(x, y)`` of `Zhou et al. 2016 <https://arxiv.org/abs/1512.04150>`_ from the
probe's weights, bilinearly upsampled to the crop, min-max scaled and overlaid (JET). The
output is one PNG grid, a row per image: the crop the network saw, then one CAM per checkpoint
(e.g. MoCo vs kNN-MoCo, as the paper shows), plus one PNG per image row and a JSON with every
prediction. The probes come from ``linear_probe.py --save-probe``, one per checkpoint.

Example::

    python tools/analysis/linear_probe.py configs/knn_moco_coco.py moco.pth \\
        --dataset oxford_pets --data-root data/pets --save-probe work_dirs/probes/moco.pth
    python tools/analysis/linear_probe.py configs/knn_moco_coco.py knn_moco.pth \\
        --dataset oxford_pets --data-root data/pets --save-probe work_dirs/probes/ours.pth
    python tools/analysis/class_activation_maps.py configs/knn_moco_coco.py \\
        moco.pth knn_moco.pth --probe work_dirs/probes/moco.pth work_dirs/probes/ours.pth \\
        --images data/pets/oxford-iiit-pet/images --max-images 8 --out-dir work_dirs/cams
"""
import argparse
import os
import os.path as osp

import cv2
import mmengine
import torch

import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import RANDOM_INIT
from revisit_ssl.evaluation.class_activation_maps import (
    cam_grid, class_activation_map, load_probe, normalize_cam, overlay_cam,
    probe_logits, upsample_cam)
from revisit_ssl.evaluation.tool_utils import build_extractor
from revisit_ssl.utils import progress_bar

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Class activation maps (Zhou et al. 2016) of linear probes '
        'on frozen backbones, several checkpoints side by side, as one PNG '
        'grid.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('config', help='pretraining config (model.backbone)')
    parser.add_argument(
        'checkpoints',
        nargs='+',
        metavar='CHECKPOINT',
        help='one or more checkpoints (or converted backbone files, or '
        f'"{RANDOM_INIT}"), one grid column each')
    parser.add_argument(
        '--probe',
        nargs='+',
        action='extend',
        required=True,
        metavar='FILE',
        help='probe of linear_probe.py --save-probe, one per CHECKPOINT, in '
        'the same order')
    parser.add_argument('--images', required=True,
                        help='folder of images (read in sorted order)')
    parser.add_argument('--out-dir', required=True,
                        help='where cam_grid.png, one PNG per image and '
                        'cams.json go')
    parser.add_argument(
        '--class',
        dest='class_name',
        default=None,
        metavar='NAME',
        help="show this class's map for every image instead of the "
        'predicted one')
    parser.add_argument('--max-images', type=int, default=16)
    parser.add_argument(
        '--tile-size',
        type=int,
        default=None,
        help='tile side in the grid (default: the crop size, at least 128)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='weight of the heat map in the overlay')
    parser.add_argument(
        '--encoder',
        choices=('online', 'momentum'),
        default='online',
        help='which backbone of each checkpoint')
    parser.add_argument('--device', default=None)
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random-init backbone')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def list_images(folder: str, max_images: int) -> list:
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'--images {folder!r} is not a folder; pass a folder of '
            f'{"/".join(IMAGE_EXTENSIONS)} files')
    files = sorted(
        osp.join(folder, f) for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(
            f'--images {folder!r} holds no {"/".join(IMAGE_EXTENSIONS)} file')
    return files[:max_images]


def probe_pipeline(probe: dict):
    """The probe's evaluation pipeline, loading from files (mmpretrain transforms)."""
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope
    steps = [
        dict(t) for t in probe['meta'].get('pipeline') or []
        if str(t.get('type', '')).split('.')[-1] != 'LoadImageFromFile'
    ]
    if not steps:
        raise ValueError('the probe file records no pipeline; save it again '
                         'with linear_probe.py --save-probe')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose([dict(type='LoadImageFromFile')] + steps)


def checkpoint_cams(args, checkpoint: str, probe: dict, images: list) -> list:
    """Per image: the crop, its CAM (in [0, 1], crop size), the class and the logits."""
    extractor, _, _ = build_extractor(
        argparse.Namespace(config=args.config, checkpoint=checkpoint,
                           encoder=args.encoder, device=args.device,
                           seed=args.seed),
        pool=False, l2_normalize=False)
    device = next(extractor.backbone.parameters()).device
    pipeline = probe_pipeline(probe)
    weight, bias = probe['weight'].to(device), probe['bias'].to(device)
    l2 = bool(probe['meta'].get('features', {}).get('l2_normalize', True))
    chosen = None
    if args.class_name is not None:
        if args.class_name not in probe['classes']:
            raise ValueError(f'--class {args.class_name!r} is not a class of '
                             f"the probe: {probe['classes']}")
        chosen = probe['classes'].index(args.class_name)
    out = []
    for path in progress_bar(images, osp.basename(checkpoint), len(images),
                             not args.no_progress):
        packed = pipeline(dict(img_path=path))
        crop = packed['inputs']  # (3, H, W) uint8, BGR as loaded
        fmap = extractor(crop[None].to(device))
        if fmap.ndim != 4:
            raise ValueError('the backbone gives no spatial feature map; a CAM '
                             'needs a (N, C, h, w) last stage')
        logits, scale = probe_logits(fmap, weight, bias, l2)
        pred = int(logits[0].argmax())
        cls = pred if chosen is None else chosen
        cam = class_activation_map(fmap, weight, [cls], scale)[0]
        cam01 = normalize_cam(upsample_cam(cam, crop.shape[1:])).cpu().numpy()
        prob = torch.softmax(logits[0], 0)
        out.append(
            dict(crop=crop.permute(1, 2, 0).numpy().copy(), cam=cam01,
                 class_index=cls, class_name=probe['classes'][cls],
                 predicted=probe['classes'][pred],
                 logit=float(logits[0, cls]), prob=float(prob[cls]),
                 cam_mean=float(cam.mean()), feature_size=list(cam.shape)))
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    if len(args.probe) != len(args.checkpoints):
        raise ValueError(
            f'{len(args.checkpoints)} CHECKPOINTs but {len(args.probe)} '
            '--probe files; pass one probe per checkpoint, in the same order')
    probes = [load_probe(p) for p in args.probe]
    for ckpt, probe, path in zip(args.checkpoints, probes, args.probe):
        saved = probe['meta'].get('checkpoint')
        if saved and osp.basename(str(saved)) != osp.basename(ckpt):
            print(f'note: --probe {path} was fitted on {saved!r}, shown with '
                  f'{ckpt!r}')
    images = list_images(args.images, args.max_images)
    per_ckpt = [
        checkpoint_cams(args, ckpt, probe, images)
        for ckpt, probe in zip(args.checkpoints, probes)
    ]
    tile = args.tile_size or max(128, per_ckpt[0][0]['crop'].shape[0])
    rows, captions, records = [], [], []
    titles = ['image'] + [
        osp.splitext(osp.basename(c))[0] for c in args.checkpoints
    ]
    os.makedirs(args.out_dir, exist_ok=True)
    for i, path in enumerate(images):
        entries = [results[i] for results in per_ckpt]
        row = [entries[0]['crop']]
        caps = [osp.basename(path)]
        for entry in entries:
            crop = cv2.resize(entry['crop'], entry['cam'].shape[::-1])
            row.append(overlay_cam(crop, entry['cam'], args.alpha))
            caps.append(f"{entry['class_name']} {entry['prob'] * 100:.0f}%")
        rows.append(row)
        captions.append(caps)
        stem = osp.splitext(osp.basename(path))[0]
        cv2.imwrite(osp.join(args.out_dir, f'{stem}_cam.png'),
                    cam_grid([row], [caps], titles, tile))
        records.append(
            dict(image=path, checkpoints=[
                dict(checkpoint=c, probe=p, **{
                    k: v
                    for k, v in e.items() if k not in ('crop', 'cam')
                }) for c, p, e in zip(args.checkpoints, args.probe, entries)
            ]))
    grid = cam_grid(rows, captions, titles, tile)
    grid_path = osp.join(args.out_dir, 'cam_grid.png')
    cv2.imwrite(grid_path, grid)
    result = dict(tool='class_activation_maps', config=args.config,
                  checkpoints=args.checkpoints, probes=args.probe,
                  chosen_class=args.class_name, tile=tile, grid=grid_path,
                  grid_shape=list(grid.shape), images=records)
    mmengine.dump(result, osp.join(args.out_dir, 'cams.json'), indent=2)
    print(f'{len(images)} images x {len(args.checkpoints)} checkpoints: grid '
          f'written to {grid_path} (details in '
          f"{osp.join(args.out_dir, 'cams.json')})")
    return result


if __name__ == '__main__':
    main()
