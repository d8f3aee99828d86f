"""DAVIS-2017 video instance segmentation without fine-tuning (kNN-MoCo paper, Tables 3 and 5).

Label propagation with the frozen backbone, protocol of Jabri et al. 2020 (contrastive random
walk, ``code/test.py``: top-k 10, context of the first frame plus the last 20 frames, spatial
radius 12, temperature 0.05, native frame size, stride-8 features from layer3 with layer4
removed); scored with the J and F of the davis2017-evaluation toolkit (frames 1..n-2, mean over
objects). Writes one id PNG per frame, ``<out-dir>/<seq>/<frame>.png`` (the frame's size, the
annotation's palette), which the official toolkit also reads (``--results_path``).

Example::

    python tools/analysis/davis_label_propagation.py configs/knn_moco_coco.py CKPT \\
        --davis-root data/DAVIS --out-dir work_dirs/davis/knn_moco
"""
import argparse
import time

import torch

import revisit_ssl  # noqa: F401  registers components and checkpoint safe globals
from revisit_ssl.evaluation.backbone_loader import load_backbone, load_config
from revisit_ssl.evaluation.davis_metrics import (DEFAULT_BOUND_TH,
                                                  SUMMARY_KEYS, DAVISScores)
from revisit_ssl.evaluation.label_propagation import (
    CRW_CONTEXT, CRW_RADIUS, CRW_TEMPERATURE, CRW_TOPK,
    backbone_stride8_overrides, load_davis_split, propagate_davis_sequence)
from revisit_ssl.evaluation.feature_extractor import (FeatureExtractor,
                                                      ImageNormalizer)
from revisit_ssl.evaluation.tool_utils import (add_model_args, default_device,
                                               default_out_path, write_result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='DAVIS-2017 label propagation with a frozen backbone '
        '(Jabri et al. 2020 protocol) and the J / F / J&F of the '
        'davis2017-evaluation toolkit.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_args(parser)
    parser.add_argument(
        '--davis-root',
        required=True,
        help='DAVIS-2017 folder with JPEGImages/<resolution>/<seq>/*.jpg, '
        'Annotations/<resolution>/<seq>/*.png and ImageSets/2017/<split>.txt')
    parser.add_argument(
        '--out-dir',
        required=True,
        help='where the predicted id PNGs go: <out-dir>/<seq>/<frame>.png')
    parser.add_argument('--split',
                        default='val',
                        help='ImageSets/2017/<split>.txt')
    parser.add_argument('--resolution',
                        default='480p',
                        help='JPEGImages / Annotations sub-folder')
    parser.add_argument('--sequences',
                        nargs='+',
                        default=None,
                        help='only these sequences of the split (quick runs)')
    parser.add_argument('--topk', type=int, default=CRW_TOPK)
    parser.add_argument(
        '--context',
        type=int,
        default=CRW_CONTEXT,
        help='recent frames in the context, besides the first frame')
    parser.add_argument(
        '--radius',
        type=float,
        default=CRW_RADIUS,
        help='spatial radius in feature cells (recent frames only)')
    parser.add_argument('--temperature', type=float, default=CRW_TEMPERATURE)
    parser.add_argument(
        '--no-context-padding',
        action='store_true',
        help='before frame --context, use only the frames that exist '
        '(the reference repeats frame 0 to fill the window)')
    parser.add_argument(
        '--layer',
        type=int,
        choices=(3, 4),
        default=3,
        help='ResNet stage whose output is the feature (the reference '
        'removes layer4)')
    parser.add_argument(
        '--dilate',
        action='store_true',
        help='dilate the stride-1 stages (2, 4) instead of the reference\'s '
        'plain stride 1')
    parser.add_argument(
        '--bound-th',
        type=float,
        default=DEFAULT_BOUND_TH,
        help='F boundary tolerance: fraction of the image diagonal (<1) or '
        'pixels (>=1)')
    parser.add_argument('--batch-size',
                        type=int,
                        default=4,
                        help='frames per forward pass')
    parser.add_argument('--seed',
                        type=int,
                        default=0,
                        help='seed of the random init for CHECKPOINT=random')
    parser.add_argument('--out',
                        default=None,
                        help='result file (.json, or .csv)')
    parser.add_argument('--no-progress',
                        action='store_true',
                        help='no progress bars')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config)
    # the data first: a wrong --davis-root fails before the backbone is built
    sequences = load_davis_split(args.davis_root, args.split, args.resolution,
                                 args.sequences)
    overrides = backbone_stride8_overrides(cfg.model.backbone, args.layer,
                                           args.dilate)
    if not overrides:
        print(f'note: backbone {cfg.model.backbone["type"]} has no ResNet '
              'strides/dilations/num_stages arguments; its last output is '
              'used as it is (not necessarily stride 8)')
    device = default_device(args.device)
    backbone, model_info = load_backbone(cfg,
                                         args.checkpoint,
                                         args.encoder,
                                         overrides,
                                         device,
                                         seed=args.seed)
    model_info['device'] = device
    # dense map of the last kept stage, L2-normalised per pixel (the reference's features)
    extractor = FeatureExtractor(backbone,
                                 ImageNormalizer.from_config(cfg).to(device),
                                 pool=False,
                                 l2_normalize=True).eval()
    scores = DAVISScores(args.bound_th)
    per_sequence, unscored = [], []
    start = time.time()
    for i, seq in enumerate(sequences, 1):
        t0 = time.time()
        res = propagate_davis_sequence(extractor,
                                       seq,
                                       args.out_dir,
                                       topk=args.topk,
                                       n_context=args.context,
                                       radius=args.radius,
                                       temperature=args.temperature,
                                       pad_context=not args.no_context_padding,
                                       batch_size=args.batch_size,
                                       device=device,
                                       progress=not args.no_progress)
        entry = dict(sequence=seq.name,
                     num_frames=len(seq.frames),
                     object_ids=res['object_ids'],
                     image_size=list(res['image_size']),
                     feature_size=list(res['feature_size']))
        line = (f'sequence {i}/{len(sequences)} {seq.name}: '
                f'{len(seq.frames)} frames, {len(res["object_ids"])} objects, '
                f'features {res["feature_size"][0]}x{res["feature_size"][1]}')
        if res['gt'] is None:
            missing = sum(a is None for a in seq.annotations)
            unscored.append(seq.name)
            line += (f', not scored ({missing} frames without annotation)')
        else:
            rows = scores.add(seq.name, res['gt'], res['pred'])
            entry['objects'] = rows
            j = sum(r['J-Mean'] for r in rows) / max(1, len(rows))
            f = sum(r['F-Mean'] for r in rows) / max(1, len(rows))
            line += f', J {j:.3f} F {f:.3f}'
        per_sequence.append(entry)
        print(f'{line} ({time.time() - t0:.1f} s)', flush=True)
    summary = scores.summary()
    result = dict(tool='davis_label_propagation',
                  config=args.config,
                  model=model_info,
                  backbone_overrides={
                      k: list(v) if isinstance(v, tuple) else v
                      for k, v in overrides.items()
                  },
                  data=dict(davis_root=args.davis_root,
                            split=args.split,
                            resolution=args.resolution,
                            num_sequences=len(sequences),
                            unscored_sequences=unscored),
                  protocol=dict(topk=args.topk,
                                context=args.context,
                                radius=args.radius,
                                temperature=args.temperature,
                                context_padding=not args.no_context_padding,
                                layer=args.layer,
                                dilate=args.dilate,
                                bound_th=args.bound_th),
                  out_dir=args.out_dir,
                  summary=summary,
                  sequences=per_sequence,
                  seconds=time.time() - start)
    out = write_result(
        result, args.out or default_out_path(args, 'davis_label_propagation'))
    print(f'predictions written to {args.out_dir}')
    if summary is None:
        print(f'no sequence of --split {args.split} has annotations for all '
              'frames: nothing scored (J / F need every frame annotated)')
    else:
        if unscored:
            print(f'{len(unscored)} sequences without full annotations were '
                  f'not scored: {unscored}')
        print(f'{summary["num_objects"]} objects in '
              f'{len(sequences) - len(unscored)} sequences')
        for key in SUMMARY_KEYS:
            print(f'{key}: {summary[key]:.4f}')
    print(f'results written to {out}')
    return result


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    main()
