"""Picture what kNN-MoCo's nearest-neighbour mining returns: query crops and their nearest
neighbours in a backbone queue, as a PNG grid a person can judge.

During training each query crop's pooled *online* backbone feature is matched against the
backbone queue, which holds the *momentum* encoder's pooled backbone features of recent key
crops. A checkpoint stores that queue (``head.backbone_queue``) but not the images behind it,
so this tool rebuilds an equivalent queue: ``--queue-size`` random-resized crops (as in
training) of the given images, encoded by the checkpoint's momentum backbone. Each query crop
(online backbone) is shown with its ``--topk`` most similar queue crops, their cosine
similarity, and a border: green = same class as the query, red = other class (class-folder
data), blue = another crop of the query's own image. When the checkpoint has a stored queue,
each row also shows the query's top-1 / mean top-k similarity in *that* queue, so one can check
that the rebuilt queue is as close as the real one.

Example::

    python tools/analysis/visualize_retrieval.py configs/knn_moco_demo.py \\
        work_dirs/knn_moco_demo/epoch_40.pth --data-root data/demo/train --crop-size 32
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation import (RANDOM_INIT, FeatureExtractor,
                                    ImageNormalizer, build_eval_dataloader,
                                    load_backbone,
                                    load_checkpoint_file, load_config)
from revisit_ssl.evaluation.tool_utils import (add_loader_args,
                                               default_device,
                                               default_out_path, write_result)
from revisit_ssl.utils import progress_bar

GREEN, RED, BLUE, GREY = (60, 180, 60), (50, 50, 220), (220, 120, 40), (
    150, 150, 150)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='PNG grid of query crops and their nearest neighbours '
        'in a (rebuilt) backbone queue of a kNN-MoCo checkpoint.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('config', help='pretraining config')
    parser.add_argument(
        'checkpoint',
        help=f'checkpoint of a pretraining run (or "{RANDOM_INIT}")')
    parser.add_argument(
        '--data-root',
        required=True,
        help='image folder, searched recursively; with class sub-folders '
        '(e.g. data/demo/train) neighbours are coloured by class agreement')
    parser.add_argument('--num-queries', type=int, default=8)
    parser.add_argument('--topk', type=int, default=8)
    parser.add_argument(
        '--queue-size',
        type=int,
        default=512,
        help='number of random crops in the rebuilt queue')
    parser.add_argument(
        '--crop-size',
        type=int,
        default=224,
        help='crop size fed to the backbone (the training crop size)')
    parser.add_argument(
        '--min-scale',
        type=float,
        default=0.2,
        help='smallest crop area fraction (MoCo-v2 uses 0.2)')
    parser.add_argument(
        '--tile', type=int, default=96, help='displayed tile size in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default=None)
    # --num-workers is accepted for symmetry but unused: the crops draw from this
    # process's seeded numpy state, so they are made without workers
    add_loader_args(
        parser, 'PNG path; the neighbours are also written next to it as JSON')
    return parser.parse_args(argv)


def image_dataset(root: str, crop_size: int, min_scale: float):
    """Every image under ``root`` (recursively, mmpretrain's ``CustomDataset`` without labels),
    as one random-resized crop, as in training."""
    from mmpretrain.registry import DATASETS
    if not osp.isdir(root):
        raise FileNotFoundError(f'--data-root {root!r} is not a folder')
    return DATASETS.build(
        dict(
            type='mmpretrain.CustomDataset',
            data_root=root,
            with_label=False,
            pipeline=[
                dict(type='mmpretrain.LoadImageFromFile'),
                dict(
                    type='mmpretrain.RandomResizedCrop',
                    scale=crop_size,
                    crop_ratio_range=(min_scale, 1.0)),
                dict(type='mmpretrain.PackInputs'),
            ]))


def label_of(path: str, root: str):
    """Class = first sub-folder below ``root``; None for images directly in it."""
    rel = osp.relpath(path, root).split(os.sep)
    return rel[0] if len(rel) > 1 else None


def encode_crops(extractor, dataset, indices, args, desc):
    """Crops of the images ``indices`` -> (L2-normalised features, uint8 HWC BGR crops)."""
    # no workers: mmcv's random crops draw from this process's numpy state (seeded)
    loader = build_eval_dataloader(
        torch.utils.data.Subset(dataset, list(indices)), args.batch_size, 0)
    feats, crops = [], []
    # the same batch gives the features and the pictures
    for batch in progress_bar(loader, desc, len(loader), not args.no_progress):
        feats.append(extractor(batch['inputs']).cpu())
        crops += [x.permute(1, 2, 0).numpy() for x in batch['inputs']]
    return torch.cat(feats), crops


def tile(crop: np.ndarray, size: int, text: str, colour) -> np.ndarray:
    img = cv2.resize(np.ascontiguousarray(crop), (size, size),
                     interpolation=cv2.INTER_AREA)
    img = cv2.copyMakeBorder(img, 3, 3, 3, 3, cv2.BORDER_CONSTANT,
                             value=colour)
    strip = np.full((16, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], 0)


def main(argv=None) -> dict:
    args = parse_args(argv)
    np.random.seed(args.seed)  # mmcv's random crops draw from numpy's global state
    torch.manual_seed(args.seed)
    cfg = load_config(args.config)
    device = default_device(args.device)
    normalizer = ImageNormalizer.from_config(cfg).to(device)
    encoders = {}
    for role, encoder in (('query', 'online'), ('queue', 'momentum')):
        try:
            backbone, info = load_backbone(cfg, args.checkpoint, encoder,
                                           device=device, seed=args.seed)
        except KeyError:  # no momentum encoder (a converted file): use the online one
            backbone, info = load_backbone(cfg, args.checkpoint, 'online',
                                           device=device, seed=args.seed)
        encoders[role] = (FeatureExtractor(backbone, normalizer), info)

    dataset = image_dataset(args.data_root, args.crop_size, args.min_scale)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    rng = np.random.default_rng(args.seed)
    queue_src = rng.integers(len(paths), size=args.queue_size)
    query_src = rng.choice(
        len(paths), size=min(args.num_queries, len(paths)), replace=False)
    queue_feats, queue_crops = encode_crops(encoders['queue'][0], dataset,
                                            queue_src, args, 'queue crops')
    query_feats, query_crops = encode_crops(encoders['query'][0], dataset,
                                            query_src, args, 'query crops')
    k = min(args.topk, len(queue_feats))
    sims = query_feats @ queue_feats.t()
    top_sim, top_idx = sims.topk(k, dim=1)

    stored = None
    if args.checkpoint != RANDOM_INIT:
        state = load_checkpoint_file(args.checkpoint).get('state_dict', {})
        if 'head.backbone_queue' in state:
            stored = F.normalize(state['head.backbone_queue'].float(), dim=0)
            if stored.shape[0] != query_feats.shape[1]:
                stored = None  # not this backbone's features
    stored_top = (query_feats @ stored).topk(
        min(k, stored.shape[1]), dim=1)[0] if stored is not None else None

    rows, entries = [], []
    for q in range(len(query_src)):
        q_path = paths[query_src[q]]
        q_label = label_of(q_path, args.data_root)
        header = f'{q_label or "query"}'
        if stored_top is not None:
            header = (f'real q: {stored_top[q, 0]:.2f}/'
                      f'{stored_top[q].mean():.2f}')
        row = [tile(query_crops[q], args.tile, header, GREY)]
        neighbours = []
        for j in range(k):
            n = int(top_idx[q, j])
            n_path = paths[queue_src[n]]
            n_label = label_of(n_path, args.data_root)
            same_image = n_path == q_path
            colour = BLUE if same_image else GREY if (
                q_label is None) else GREEN if n_label == q_label else RED
            row.append(
                tile(queue_crops[n], args.tile, f'{float(top_sim[q, j]):.3f}',
                     colour))
            neighbours.append(
                dict(
                    img_path=n_path,
                    label=n_label,
                    similarity=float(top_sim[q, j]),
                    same_image=same_image))
        gap = np.full((row[0].shape[0], 8, 3), 255, np.uint8)
        rows.append(np.concatenate([row[0], gap] + row[1:], 1))
        others = [n for n in neighbours if not n['same_image']]
        entry = dict(
            img_path=q_path, label=q_label, neighbours=neighbours)
        if q_label is not None and others:
            entry['class_agreement'] = float(
                np.mean([n['label'] == q_label for n in others]))
        if stored_top is not None:
            entry['stored_queue_topk_similarity'] = stored_top[q].tolist()
        entries.append(entry)
    grid = np.concatenate(rows, 0)
    legend = np.full((22, grid.shape[1], 3), 255, np.uint8)
    cv2.putText(
        legend, 'left: query crop | numbers: cosine similarity | border '
        'green: same class, red: other class, blue: same image', (4, 15),
        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.concatenate([legend, grid], 0)

    out_png = args.out or default_out_path(args, 'visualize_retrieval',
                                           '.png')
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    cv2.imwrite(out_png, grid)
    agreements = [e['class_agreement'] for e in entries
                  if 'class_agreement' in e]
    result = dict(
        tool='visualize_retrieval',
        config=args.config,
        query_encoder=encoders['query'][1],
        queue_encoder=encoders['queue'][1],
        data_root=args.data_root,
        queue_size=len(queue_feats),
        topk=k,
        crop_size=args.crop_size,
        png=out_png,
        mean_class_agreement=float(np.mean(agreements))
        if agreements else None,
        rebuilt_queue_mean_topk_similarity=float(top_sim.mean()),
        stored_queue_mean_topk_similarity=float(stored_top.mean())
        if stored_top is not None else None,
        queries=entries)
    out_json = write_result(result, osp.splitext(out_png)[0] + '.json')
    print(f'grid of {len(entries)} queries x {k} neighbours written to '
          f'{out_png} (neighbours in {out_json})')
    if agreements:
        print(f'neighbours of the same class as their query: '
              f'{100 * np.mean(agreements):.1f}% (chance for balanced '
              'classes: 1 / number of classes)')
    return result


if __name__ == '__main__':
    main()
