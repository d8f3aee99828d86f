"""Semantic segment retrieval with frozen pixel features (kNN-MoCo paper, appendix A.7).

The backbone's last stage is dilated (stride 1, dilation 2: output stride 16 instead of 32) and
nothing is pooled. Each image's feature map is clustered with K-means (K = 15); a region's
descriptor is the mean feature of its pixels. Training regions take the majority ground-truth
class of their pixels; every validation region takes the class of its single nearest training
region (cosine similarity, not weighted). Region labels are painted back at the input
resolution and scored by mIoU on the validation split.

Reads the VOC segmentation layout with mmseg's ``PascalVOCDataset``:
ImageSets/Segmentation/<split>.txt, JPEGImages/<id>.jpg and SegmentationClass/<id>.png (palette
PNG, 255 = void).

Example::

    python tools/analysis/segment_retrieval.py configs/knn_moco_demo.py CKPT \\
        --voc-root data/demo/VOCdevkit/VOC2012
"""
import argparse
import inspect


import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (build_eval_dataloader, load_config,
                                    segment_retrieval_miou,
                                    voc_segmentation_dataset)
from revisit_ssl.evaluation.tool_utils import (add_model_args,
                                               build_extractor,
                                               default_out_path, write_result)
from revisit_ssl.utils import progress_bar


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


def feature_maps(extractor, dataset, args, desc):
    """Yield ``(feature_map (C, h, w), gt (H, W))`` per image of ``dataset``."""
    loader = build_eval_dataloader(dataset, 1, args.num_workers)
    for batch in progress_bar(loader, desc, len(loader), not args.no_progress):
        sample = batch['data_samples'][0]
        gt = sample.gt_seg_map
        if gt.ndim != 2:
            raise ValueError(
                f'{sample.seg_map_path!r} decodes to shape {gt.shape}; a '
                'label map must be a palette or grey PNG of class indices')
        yield extractor(batch['inputs'])[0].cpu().numpy(), gt.astype('int64')


def voc_split(args, split):
    """The split's images, resized per ``--short-edge``, with their label maps at full size."""
    pipeline = [dict(type='mmpretrain.LoadImageFromFile')]
    if args.short_edge:  # resizes the image only: the label map stays at full resolution
        pipeline.append(
            dict(type='mmpretrain.ResizeEdge', scale=args.short_edge,
                 edge='short'))
    pipeline += [
        dict(type='mmseg.LoadAnnotations'),
        dict(type='mmpretrain.PackInputs', algorithm_keys=('gt_seg_map', ),
             meta_keys=('img_path', 'seg_map_path')),
    ]
    return voc_segmentation_dataset(args.voc_root, split, pipeline,
                                    args.max_images)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config)
    overrides = {} if args.no_dilation else dilation_overrides(cfg)
    if not args.no_dilation and not overrides:
        print(f'note: backbone {cfg.model.backbone["type"]} has no '
              'strides/dilations arguments; its last stage is used as is')
    extractor, model_info, _ = build_extractor(
        args, pool=False, l2_normalize=False, overrides=overrides)
    train, val = voc_split(args, args.train_split), voc_split(args, args.val_split)
    overlap = {train.get_data_info(i)['img_path'] for i in range(len(train))} & {
        val.get_data_info(i)['img_path'] for i in range(len(val))}
    if overlap:
        raise ValueError(f'{len(overlap)} images are in both splits; choose '
                         'disjoint --train-split and --val-split')
    res = segment_retrieval_miou(
        feature_maps(extractor, train, args, args.train_split),
        feature_maps(extractor, val, args, args.val_split),
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
            num_train=len(train),
            num_val=len(val),
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
