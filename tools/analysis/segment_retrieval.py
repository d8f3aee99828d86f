"""Semantic segment retrieval with frozen pixel features (kNN-MoCo paper, appendix A.7).

The backbone's last stage is dilated (stride 1, dilation 2: output stride 16 instead of 32) and
nothing is pooled. Each image's feature map is clustered with K-means (K = 15); a region's
descriptor is the mean feature of its pixels. Training regions take the majority ground-truth
class of their pixels; every validation region takes the class of its single nearest training
region (cosine similarity, not weighted). Region labels are painted back at the input
resolution and scored by mIoU on the validation split.

Reads the VOC segmentation layout: ImageSets/Segmentation/<split>.txt, JPEGImages/<id>.jpg and
SegmentationClass/<id>.png (palette PNG, 255 = void).

Example::

    python tools/analysis/segment_retrieval.py configs/knn_moco_demo.py CKPT \\
        --voc-root data/demo/VOCdevkit/VOC2012
"""
import argparse
import inspect
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import revisit_ssl  # noqa: E402,F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (ImageListDataset,  # noqa: E402
                                    load_config, load_voc_segmentation_ids,
                                    make_dataloader, read_label_png,
                                    segment_retrieval_miou, track)
from revisit_ssl.evaluation.tool_utils import (  # noqa: E402
    add_model_args, build_extractor, default_out_path, write_result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Semantic segment retrieval (paper appendix A.7): '
        'per-image K-means regions of dilated backbone features, nearest '
        'training region labels each validation region, mIoU.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    parser.add_argument(
        '--voc-root',
        default='data/VOCdevkit/VOC2012',
        help='VOC folder with ImageSets/Segmentation, JPEGImages and '
        'SegmentationClass')
    parser.add_argument('--train-split', default='train')
    parser.add_argument('--val-split', default='val')
    parser.add_argument(
        '--num-classes',
        type=int,
        default=21,
        help='ground-truth classes including background (21 for VOC; '
        'classes that never occur are left out of the mean)')
    parser.add_argument('--ignore-index', type=int, default=255)
    parser.add_argument(
        '--num-clusters', type=int, default=15, help='K of the K-means')
    parser.add_argument(
        '--short-edge',
        type=int,
        default=None,
        help='resize images to this short edge before the backbone '
        '(default: original size)')
    parser.add_argument(
        '--no-dilation',
        action='store_true',
        help='keep the last stage strided (output stride 32)')
    parser.add_argument(
        '--max-images',
        type=int,
        default=None,
        help='use at most this many images per split (quick runs)')
    parser.add_argument('--seed', type=int, default=0, help='K-means seed')
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--out', default=None, help='result file (.json/.csv)')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def dilation_overrides(cfg) -> dict:
    """Backbone keys that make the last of four stages stride 1, dilation 2 (ResNet-style)."""
    from mmpretrain.registry import MODELS
    backbone_cfg = cfg.model.backbone
    backbone_cls = MODELS.get(backbone_cfg['type'])
    params = inspect.signature(backbone_cls).parameters
    if backbone_cls is None or not {'strides', 'dilations'} <= set(params):
        return {}
    strides = list(backbone_cfg.get('strides', params['strides'].default))
    dilations = list(
        backbone_cfg.get('dilations', params['dilations'].default))
    strides[-1] = 1
    dilations[-1] = 2 * dilations[-1]
    return dict(strides=tuple(strides), dilations=tuple(dilations))


def feature_maps(extractor, voc_root, ids, args, desc):
    """Yield ``(feature_map (C, h, w), gt (H, W))`` per image."""
    pipeline = [dict(type='LoadImageFromFile')]
    if args.short_edge:
        pipeline.append(
            dict(type='ResizeEdge', scale=args.short_edge, edge='short'))
    pipeline.append(dict(type='PackInputs'))
    paths = [osp.join(voc_root, 'JPEGImages', f'{i}.jpg') for i in ids]
    loader = make_dataloader(
        ImageListDataset(paths, pipeline), 1, args.num_workers)
    # the bar first, so that it sees its last item through before zip stops
    for batch, img_id in zip(
            track(loader, desc=desc, enabled=not args.no_progress), ids):
        fmap = extractor(batch['inputs'])[0].cpu().numpy()
        gt = read_label_png(
            osp.join(voc_root, 'SegmentationClass', f'{img_id}.png'))
        yield fmap, gt


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config)
    overrides = {} if args.no_dilation else dilation_overrides(cfg)
    if not args.no_dilation and not overrides:
        print(f'note: backbone {cfg.model.backbone["type"]} has no '
              'strides/dilations arguments; its last stage is used as is')
    extractor, model_info, _ = build_extractor(
        args, pool=False, l2_normalize=False, overrides=overrides)
    ids = {}
    for split in (args.train_split, args.val_split):
        ids[split] = load_voc_segmentation_ids(args.voc_root,
                                               split)[:args.max_images]
    overlap = set(ids[args.train_split]) & set(ids[args.val_split])
    if overlap:
        raise ValueError(f'{len(overlap)} images are in both splits; choose '
                         'disjoint --train-split and --val-split')
    res = segment_retrieval_miou(
        feature_maps(extractor, args.voc_root, ids[args.train_split], args,
                     args.train_split),
        feature_maps(extractor, args.voc_root, ids[args.val_split], args,
                     args.val_split),
        num_classes=args.num_classes,
        num_clusters=args.num_clusters,
        ignore_index=args.ignore_index,
        seed=args.seed)
    result = dict(
        tool='segment_retrieval',
        config=args.config,
        model=model_info,
        backbone_overrides={k: list(v)
                            for k, v in overrides.items()},
        data=dict(
            voc_root=args.voc_root,
            train_split=args.train_split,
            val_split=args.val_split,
            num_train=len(ids[args.train_split]),
            num_val=len(ids[args.val_split]),
            short_edge=args.short_edge),
        num_clusters=args.num_clusters,
        num_classes=args.num_classes,
        **res)
    out = write_result(result,
                       args.out or default_out_path(args, 'segment_retrieval'))
    present = sum(v is not None for v in res['per_class_iou'])
    print(f"segment retrieval mIoU: {100 * res['mIoU']:.2f}  ({present} "
          f"classes present, {res['num_train_regions']} train regions, "
          f"{res['num_val_regions']} val regions)")
    print(f'results written to {out}')
    return result


if __name__ == '__main__':
    main()
