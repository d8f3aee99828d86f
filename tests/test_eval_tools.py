"""End to end: a briefly trained MoCo run with the KNNMonitorHook, then every tool of
``tools/analysis`` on its checkpoint and the demo data.

The run is mmpretrain's ``MoCo`` with a ResNet-18 (KNNMoCo checkpoints differ only in key
names, which ``test_eval_backbone_loading`` covers), trained for 2 epochs x 3 iterations on
the 48-image demo split at 64 px. That is far too short to learn shapes: the "beats chance"
checks below pass because the demo classes have preferred hues and even random-init ResNet
features carry colour (the random-init baseline is measured and reported next to it). They
check that the tools classify with the right labels, not that training helped.
"""
import csv
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = ('knn_eval', 'linear_probe', 'voc_svm', 'segment_retrieval',
         'visualize_retrieval', 'plot_curves', 'class_activation_maps',
         'davis_label_propagation', 'crop_iou')
CHANCE = 100 / 6  # six balanced demo classes


def tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_eval_tool_{name}', osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def knn_pipeline(size=64):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=size, edge='short'),
        dict(type='CenterCrop', crop_size=size),
        dict(type='PackInputs'),
    ]


def knn_loader(demo_root, split):
    return dict(
        batch_size=64,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='CustomDataset',
            data_root=demo_root,
            data_prefix=split,
            pipeline=knn_pipeline()))


def moco_config(demo_root, work_dir):
    view = [
        dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.2, 1.)),
        dict(type='RandomFlip', prob=0.5),
    ]
    return Config(
        dict(
            default_scope='mmpretrain',
            work_dir=work_dir,
            model=dict(
                type='MoCo',
                queue_len=64,
                feat_dim=32,
                momentum=0.01,
                data_preprocessor=dict(
                    type='SelfSupDataPreprocessor',
                    mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375],
                    to_rgb=True),
                backbone=dict(
                    type='ResNet', depth=18, norm_cfg=dict(type='BN')),
                neck=dict(
                    type='MoCoV2Neck',
                    in_channels=512,
                    hid_channels=64,
                    out_channels=32,
                    with_avg_pool=True),
                head=dict(
                    type='ContrastiveHead',
                    loss=dict(type='CrossEntropyLoss'),
                    temperature=0.2)),
            train_dataloader=dict(
                batch_size=16,
                num_workers=0,
                drop_last=True,
                sampler=dict(type='DefaultSampler', shuffle=True),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='CustomDataset',
                    data_root=demo_root,
                    data_prefix='train',
                    with_label=False,
                    pipeline=[
                        dict(type='LoadImageFromFile'),
                        dict(
                            type='MultiView', num_views=2,
                            transforms=[view]),
                        dict(type='PackInputs')
                    ])),
            optim_wrapper=dict(
                type='OptimWrapper',
                optimizer=dict(type='SGD', lr=0.03, momentum=0.9,
                               weight_decay=1e-4)),
            train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2),
            default_hooks=dict(
                logger=dict(type='LoggerHook', interval=1),
                checkpoint=dict(type='CheckpointHook', interval=1)),
            custom_hooks=[
                dict(
                    type='KNNMonitorHook',
                    interval=1,
                    topk=(20, 200),
                    temperature=0.07,
                    train_dataloader=knn_loader(demo_root, 'train'),
                    val_dataloader=knn_loader(demo_root, 'val'))
            ],
            visualizer=dict(
                type='UniversalVisualizer',
                vis_backends=[dict(type='LocalVisBackend')]),
            randomness=dict(seed=0),
            env_cfg=dict(dist_cfg=dict(backend='gloo')),
            log_level='INFO'))


@pytest.fixture(scope='module')
def trained_run(demo_root, tmp_path_factory):
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('moco_run'))
    cfg = moco_config(demo_root, work_dir)
    cfg_path = osp.join(work_dir, 'moco_r18_demo.py')
    cfg.dump(cfg_path)
    runner = Runner.from_cfg(Config.fromfile(cfg_path))
    hook = [h for h in runner.hooks if type(h).__name__ == 'KNNMonitorHook'][0]
    runner.train()
    return dict(
        cfg=cfg_path,
        ckpt=osp.join(work_dir, 'epoch_2.pth'),
        work_dir=work_dir,
        hook=hook,
        runner=runner,
        demo_root=demo_root)


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    from revisit_ssl.utils.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('voc_demo'))
    make_demo_data(root, formats=('voc', ), num_train=30, num_val=18, seed=1)
    return osp.join(root, 'VOCdevkit', 'VOC2012')


# ---------------------------------------------------------------- the online monitor
def test_monitor_logs_baseline_and_every_epoch(trained_run):
    hook, runner = trained_run['hook'], trained_run['runner']
    steps = [(step, epoch) for step, epoch, _ in hook.history]
    assert steps == [(0, 0), (3, 1), (6, 2)]  # before training, after each epoch
    for _, _, scalars in hook.history:
        assert set(scalars) == {'knn_top1_k20', 'knn_top1_k200'}
        for value in scalars.values():
            # 24 val images: every accuracy is a multiple of 100/24
            assert value * 24 / 100 == pytest.approx(round(value * 24 / 100),
                                                     abs=1e-3)
    # message hub holds the last evaluation; the model is back in training mode
    last = hook.history[-1][2]
    assert runner.message_hub.get_scalar(
        'train/knn_top1_k20').current() == last['knn_top1_k20']
    assert runner.model.training


def test_monitor_writes_scalars_and_log(trained_run):
    files = sorted(
        __import__('glob').glob(
            osp.join(trained_run['work_dir'], '*', 'vis_data',
                     'scalars.json')))
    assert len(files) == 1
    with open(files[0]) as f:
        records = [json.loads(line) for line in f]
    own = [r for r in records if 'loss' not in r and 'knn_top1_k20' in r]
    assert [r['step'] for r in own] == [0, 3, 6]
    assert [r['knn_top1_k200'] for r in own] == [
        s['knn_top1_k200'] for _, _, s in trained_run['hook'].history
    ]
    logs = __import__('glob').glob(
        osp.join(trained_run['work_dir'], '*', '*.log'))
    text = open(logs[0]).read()
    assert 'kNN monitor (random-init baseline; epoch 0, iter 0' in text
    assert 'kNN monitor (after epoch 2; epoch 2, iter 6' in text
    # the training log lines carry the latest value too (message hub 'train/...')
    assert 'knn_top1_k20:' in text


# ------------------------------------------------------------------------- the tools
@pytest.mark.parametrize('name', TOOLS)
def test_every_tool_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool(name).main(['--help'])
    assert exit_info.value.code == 0
    assert 'usage:' in capsys.readouterr().out


def test_knn_eval_matches_monitor_and_beats_chance(trained_run, tmp_path):
    out = str(tmp_path / 'knn.json')
    # no --data-root: the labelled splits (and pipeline) come from the config's hook
    result = tool('knn_eval').main([
        trained_run['cfg'], trained_run['ckpt'], '--out', out,
        '--num-workers', '0', '--no-progress'
    ])
    with open(out) as f:
        saved = json.load(f)
    assert saved['knn_top1_k20'] == result['knn_top1_k20']
    assert saved['data']['num_train'] == 48 and saved['data']['num_test'] == 24
    assert saved['k_effective'] == {'20': 20, '200': 48}
    # the same features and classifier as the hook's last evaluation (same weights)
    monitor = trained_run['hook'].history[-1][2]
    assert result['knn_top1_k20'] == pytest.approx(monitor['knn_top1_k20'])
    assert result['knn_top1_k200'] == pytest.approx(monitor['knn_top1_k200'])
    # measured 41.7% (10 of 24) here; chance is 4 of 24, the bar 6 of 24
    assert result['knn_top1_k20'] > 1.5 * CHANCE


def test_knn_eval_csv_predictions_and_random_baseline(trained_run, tmp_path):
    out, preds = str(tmp_path / 'knn.csv'), str(tmp_path / 'pred.csv')
    result = tool('knn_eval').main([
        trained_run['cfg'], 'random', '--data-root', trained_run['demo_root'],
        '--img-size', '64', '--k', '5', '--out', out, '--predictions', preds,
        '--num-workers', '0', '--no-progress'
    ])
    with open(out) as f:
        row = next(csv.DictReader(f))
    assert float(row['knn_top1_k5']) == pytest.approx(result['knn_top1_k5'])
    with open(preds) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    acc = np.mean([r['label'] == r['pred_k5'] for r in rows]) * 100
    assert acc == pytest.approx(result['knn_top1_k5'])
    # every recorded label is the class folder the image lives in
    assert all(osp.basename(osp.dirname(r['img_path'])) == r['label']
               for r in rows)


def test_linear_probe_beats_chance(trained_run, tmp_path):
    out = str(tmp_path / 'lp.json')
    result = tool('linear_probe').main([
        trained_run['cfg'], trained_run['ckpt'], '--data-root',
        trained_run['demo_root'], '--img-size', '64', '--num-l2', '9',
        '--out', out, '--num-workers', '0', '--no-progress'
    ])
    with open(out) as f:
        saved = json.load(f)
    assert saved['top1'] == result['top1'] > 2 * CHANCE
    assert len(saved['val_top1']) == 9 and saved['best_l2'] in saved['l2_grid']
    assert saved['selection'] == 'holdout of train'


def test_linear_probe_voc07(trained_run, voc_root, tmp_path):
    out = str(tmp_path / 'lp_voc.json')
    result = tool('linear_probe').main([
        trained_run['cfg'], trained_run['ckpt'], '--voc07', '--voc-root',
        voc_root, '--voc-train-split', 'train', '--voc-test-split', 'val',
        '--img-size', '64', '--num-l2', '5', '--out', out, '--num-workers',
        '0', '--no-progress'
    ])
    with open(out) as f:
        saved = json.load(f)
    assert 0 < saved['mAP'] <= 100 and saved['mAP'] == result['mAP']
    # the demo VOC tree uses the first six VOC names; the other 14 have no positive
    assert saved['data']['classes'][:2] == ['aeroplane', 'bicycle']
    evaluated = [e for e in saved['per_class'] if e['ap_area'] is not None]
    assert {e['class'] for e in evaluated} <= {
        'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus'
    }


def test_voc_svm(trained_run, voc_root, tmp_path):
    out = str(tmp_path / 'svm.json')
    result = tool('voc_svm').main([
        trained_run['cfg'], trained_run['ckpt'], '--voc-root', voc_root,
        '--train-split', 'train', '--test-split', 'val', '--img-size', '64',
        '--costs', '0.1', '1', '10', '--out', out, '--num-workers', '0',
        '--no-progress'
    ])
    with open(out) as f:
        saved = json.load(f)
    assert saved['mAP'] == pytest.approx(result['mAP'])
    assert saved['ap_method'] == 'area'
    assert saved['mAP'] == pytest.approx(saved['mAP_area'])
    assert 0 < saved['mAP_11point'] <= 100
    # overlapping image sets are refused (the demo's trainval contains val)
    with pytest.raises(ValueError, match='both'):
        tool('voc_svm').main([
            trained_run['cfg'], trained_run['ckpt'], '--voc-root', voc_root,
            '--train-split', 'trainval', '--test-split', 'val',
            '--no-progress'
        ])


@pytest.mark.parametrize('name, args', [
    ('voc_svm', []),
    ('linear_probe', ['--voc07']),
    ('segment_retrieval', []),
])
def test_voc_tools_name_their_own_flag_when_the_tree_is_missing(
        name, args, trained_run, tmp_path):
    """The VOC tools take --voc-root (not --data-root); the error must say so."""
    missing = str(tmp_path / 'no_voc')
    with pytest.raises(FileNotFoundError) as err:
        tool(name).main([
            trained_run['cfg'], trained_run['ckpt'], *args, '--voc-root', missing,
            '--no-progress'
        ])
    assert missing in str(err.value)
    assert '--voc-root' in str(err.value) and '--data-root' not in str(err.value)


def _reference_segment_retrieval(cfg_path, ckpt, voc_root, num_images, k):
    """Appendix A.7 written out again without the tool's code: cv2 / PIL reading, the dilated
    backbone called directly, per-image K-means, numpy nearest neighbours, upsampling by
    index arithmetic and a bincount confusion matrix."""
    from mmpretrain.registry import MODELS
    from PIL import Image
    from sklearn.cluster import KMeans
    cfg = Config.fromfile(cfg_path)
    backbone = MODELS.build(
        dict(cfg.model.backbone, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    backbone.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    })
    backbone.eval()
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre['mean']).view(3, 1, 1)
    std = torch.tensor(pre['std']).view(3, 1, 1)

    def regions(split):
        with open(osp.join(voc_root, 'ImageSets', 'Segmentation',
                           f'{split}.txt')) as f:
            ids = f.read().split()[:num_images]
        for img_id in ids:
            rgb = cv2.imread(osp.join(voc_root, 'JPEGImages',
                                      f'{img_id}.jpg'))[..., ::-1].copy()
            x = (torch.from_numpy(rgb).permute(2, 0, 1).float() - mean) / std
            with torch.no_grad():
                fmap = backbone(x[None])[-1][0].numpy()
            gt = np.array(
                Image.open(
                    osp.join(voc_root, 'SegmentationClass', f'{img_id}.png')))
            c, h, w = fmap.shape
            pixels = fmap.reshape(c, -1).T.astype(np.float64)
            pixels /= np.linalg.norm(pixels, axis=1, keepdims=True)
            num = min(k, len(np.unique(pixels.round(6), axis=0)))
            assign = KMeans(num, n_init=1, random_state=0).fit_predict(pixels)
            _, region = np.unique(assign, return_inverse=True)
            desc = np.stack([pixels[region == r].mean(0)
                             for r in range(region.max() + 1)])
            desc /= np.linalg.norm(desc, axis=1, keepdims=True)
            # nearest-neighbour upsampling: output pixel i reads input i * h // H
            rows = np.arange(gt.shape[0]) * h // gt.shape[0]
            cols = np.arange(gt.shape[1]) * w // gt.shape[1]
            yield region.reshape(h, w)[rows][:, cols], desc, gt

    memory, memory_labels = [], []
    for up, desc, gt in regions('train'):
        for r in range(len(desc)):
            values = gt[(up == r) & (gt != 255)]
            if values.size:
                memory.append(desc[r])
                memory_labels.append(np.bincount(values).argmax())
    memory, memory_labels = np.stack(memory), np.array(memory_labels)
    conf, num_val_regions = np.zeros((21, 21), np.int64), 0
    for up, desc, gt in regions('val'):
        labels = memory_labels[(desc @ memory.T).argmax(1)]
        pred, valid = labels[up], gt != 255
        conf += np.bincount(21 * gt[valid] + pred[valid],
                            minlength=21 * 21).reshape(21, 21)
        num_val_regions += len(desc)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return dict(
        mIoU=float((tp[present] / union[present]).mean()),
        confusion=conf.tolist(),
        num_train_regions=len(memory_labels),
        num_val_regions=num_val_regions)


def test_segment_retrieval_on_demo_voc(trained_run, voc_root, tmp_path):
    out = str(tmp_path / 'seg.json')
    result = tool('segment_retrieval').main([
        trained_run['cfg'], trained_run['ckpt'], '--voc-root', voc_root,
        '--max-images', '5', '--num-clusters', '4', '--out', out,
        '--num-workers', '0', '--no-progress'
    ])
    with open(out) as f:
        saved = json.load(f)
    assert 0 <= saved['mIoU'] <= 1 and saved['mIoU'] == result['mIoU']
    # ResNet's last stage dilated: stride 1, dilation 2
    assert saved['backbone_overrides'] == dict(
        strides=[1, 2, 2, 1], dilations=[1, 1, 1, 2])
    assert saved['num_val_regions'] <= 5 * 4
    # the same number, pixel for pixel, from an independent implementation
    reference = _reference_segment_retrieval(trained_run['cfg'],
                                             trained_run['ckpt'], voc_root, 5,
                                             4)
    assert saved['confusion'] == reference['confusion']
    assert saved['mIoU'] == pytest.approx(reference['mIoU'], abs=1e-12)
    assert saved['num_train_regions'] == reference['num_train_regions']
    assert saved['num_val_regions'] == reference['num_val_regions']
    # more than one class retrieved and scored: the check is not a trivial all-background
    assert sum(v is not None for v in saved['per_class_iou']) > 1


def test_visualize_retrieval(trained_run, tmp_path):
    # add a stored backbone queue, as KNNMoCo checkpoints have
    ckpt = torch.load(trained_run['ckpt'], map_location='cpu',
                      weights_only=True)
    ckpt['state_dict']['head.backbone_queue'] = torch.nn.functional.normalize(
        torch.randn(512, 32), dim=0)
    path = str(tmp_path / 'with_queue.pth')
    torch.save(ckpt, path)
    out = str(tmp_path / 'grid.png')
    result = tool('visualize_retrieval').main([
        trained_run['cfg'], path, '--data-root',
        osp.join(trained_run['demo_root'], 'train'), '--crop-size', '64',
        '--queue-size', '40', '--num-queries', '3', '--topk', '4',
        '--tile', '48', '--out', out, '--no-progress'
    ])
    import cv2
    grid = cv2.imread(out)
    # legend strip + 3 rows of (16-px caption + 48-px tile + 2 x 3-px border)
    assert grid.shape[0] == 22 + 3 * (16 + 48 + 6)
    assert grid.shape[1] == 5 * (48 + 6) + 8
    with open(osp.splitext(out)[0] + '.json') as f:
        saved = json.load(f)
    assert len(saved['queries']) == 3
    assert saved['queue_encoder']['prefix'] == 'encoder_k.module.0.'
    assert saved['query_encoder']['prefix'] == 'backbone.'
    for q in saved['queries']:
        sims = [n['similarity'] for n in q['neighbours']]
        assert sims == sorted(sims, reverse=True) and len(sims) == 4
        stored = q['stored_queue_topk_similarity']
        assert stored == sorted(stored, reverse=True) and len(stored) == 4
        assert q['label'] in ('circle', 'square', 'triangle', 'cross',
                              'ring', 'star')
    assert result['stored_queue_mean_topk_similarity'] is not None


def test_plot_curves(trained_run, tmp_path):
    out = str(tmp_path / 'curves.png')
    result = tool('plot_curves').main([trained_run['work_dir'], '--out', out])
    import cv2
    assert cv2.imread(out) is not None
    assert 'loss' in result['losses']
    assert [s for s, _ in result['accuracies']['knn_top1_k20']] == [0, 3, 6]
    with open(result['csv']) as f:
        rows = list(csv.DictReader(f))
    assert sum(r['series'] == 'knn_top1_k200' for r in rows) == 3
    assert sum(r['series'] == 'loss' for r in rows) == 6  # one per iteration
