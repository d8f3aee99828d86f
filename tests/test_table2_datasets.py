"""``linear_probe.py --dataset``: the paper's Table 2 targets read through torchvision's own
dataset classes from tiny fake trees in their exact on-disk layouts.

The images are class-coloured squares at the evaluation crop size, so the bicubic resize and
the centre crop leave them unchanged and an independent reading (the pickle arrays, PIL decoding
of the files) gives the same pixels. The tool's numbers are checked against scikit-learn's
``LogisticRegression`` run on features of those independently read pixels, with the protocol
written out again (stratified 20% holdout, the L2 sweep, refit on the whole training split).
"""
import importlib.util
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'knn_moco_demo.py')
SIZE = 32
CLASSES = ('red', 'green', 'blue')
COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200))  # RGB


def tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_t2_tool_{name}', osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(labels, seed):
    """``(N, SIZE, SIZE, 3)`` uint8 RGB: the class colour plus noise and a random bar."""
    rng = np.random.default_rng(seed)
    out = []
    for label in labels:
        img = np.array(COLOURS[label], np.float64) + rng.normal(0, 25, (SIZE, SIZE, 3))
        r = rng.integers(0, SIZE - 8)
        img[r:r + 6] = rng.integers(0, 255, 3)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _labels(per_class, seed):
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    return np.random.default_rng(seed).permutation(labels)


# ----------------------------------------------------------------- fake layouts
def write_cifar10(root, train_per_class=10, test_per_class=5):
    """``cifar-10-batches-py``: five pickled train batches, ``test_batch``, ``batches.meta``."""
    base = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(base)
    train_y, test_y = _labels(train_per_class, 0), _labels(test_per_class, 1)
    train_x, test_x = _images(train_y, 2), _images(test_y, 3)

    def dump(name, x, y):
        with open(osp.join(base, name), 'wb') as f:  # CHW-flattened rows, like the real one
            pickle.dump({'data': x.transpose(0, 3, 1, 2).reshape(len(x), -1),
                         'labels': [int(v) for v in y]}, f)

    for i, chunk in enumerate(np.array_split(np.arange(len(train_y)), 5)):
        dump(f'data_batch_{i + 1}', train_x[chunk], train_y[chunk])
    dump('test_batch', test_x, test_y)
    with open(osp.join(base, 'batches.meta'), 'wb') as f:
        pickle.dump({'label_names': list(CLASSES)}, f)
    return dict(train=(train_x, train_y), test=(test_x, test_y),
                classes=list(CLASSES))


def write_oxford_pets(root, train_per_class=10, test_per_class=5):
    """``oxford-iiit-pet/images/<Breed>_<n>.jpg`` and ``annotations/{trainval,test}.txt``."""
    base = osp.join(root, 'oxford-iiit-pet')
    os.makedirs(osp.join(base, 'images'))
    os.makedirs(osp.join(base, 'annotations'))
    breeds = ('abyssinian', 'beagle', 'chihuahua')
    out, count = {}, 0
    for split, per, seed in (('trainval', train_per_class, 0),
                             ('test', test_per_class, 1)):
        y = _labels(per, seed)
        x = _images(y, seed + 10)
        lines, decoded = [], []
        for img, label in zip(x, y):
            count += 1
            image_id = f'{breeds[label]}_{count}'
            path = osp.join(base, 'images', f'{image_id}.jpg')
            Image.fromarray(img).save(path, quality=95)
            decoded.append(np.asarray(Image.open(path).convert('RGB')))
            lines.append(f'{image_id} {label + 1} {1 + (label > 0)} 1')
        with open(osp.join(base, 'annotations', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        out[split] = (np.stack(decoded), y)
    return dict(train=out['trainval'], test=out['test'],
                classes=['Abyssinian', 'Beagle', 'Chihuahua'])


def write_food101(root, train_per_class=10, test_per_class=5):
    """``food-101/images/<class>/<id>.jpg`` and ``meta/{train,test}.json``."""
    base = osp.join(root, 'food-101')
    foods = ('apple_pie', 'beignets', 'churros')
    for food in foods:
        os.makedirs(osp.join(base, 'images', food))
    os.makedirs(osp.join(base, 'meta'))
    out, count = {}, 0
    for split, per, seed in (('train', train_per_class, 0),
                             ('test', test_per_class, 1)):
        y = _labels(per, seed)
        x = _images(y, seed + 20)
        meta = {food: [] for food in foods}
        for img, label in zip(x, y):
            count += 1
            rel = f'{foods[label]}/{count}'
            Image.fromarray(img).save(osp.join(base, 'images', f'{rel}.jpg'),
                                      quality=95)
            meta[foods[label]].append(rel)
        with open(osp.join(base, 'meta', f'{split}.json'), 'w') as f:
            json.dump(meta, f)
        # torchvision orders the samples class by class (sorted json keys' order of meta)
        order = [(food, rel) for food in meta for rel in meta[food]]
        decoded = [np.asarray(Image.open(osp.join(base, 'images', f'{rel}.jpg'))
                              .convert('RGB')) for _, rel in order]
        out[split] = (np.stack(decoded),
                      np.array([foods.index(food) for food, _ in order]))
    return dict(train=out['train'], test=out['test'], classes=list(foods))


def write_sun397(root, per_class=4):
    """``SUN397/ClassName.txt``, ``SUN397/<l>/<class>/sun_*.jpg``, ``Partitions/*_01.txt``."""
    base = osp.join(root, 'SUN397')
    names = ('/a/abbey', '/b/beach', '/c/canyon')
    os.makedirs(osp.join(base, 'Partitions'))
    with open(osp.join(base, 'ClassName.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')
    train, test = [], []
    for c, name in enumerate(names):
        os.makedirs(base + name)
        for i, img in enumerate(_images([c] * per_class, c)):
            rel = f'{name}/sun_{c}{i:03d}.jpg'
            Image.fromarray(img).save(base + rel)
            (train if i % 2 == 0 else test).append(rel)
    for split, rels in (('Training', train), ('Testing', test)):
        with open(osp.join(base, 'Partitions', f'{split}_01.txt'), 'w') as f:
            f.write('\n'.join(rels) + '\n')
    return train, test


def write_stanford_cars(root, per_class=2):
    from scipy.io import savemat
    base = osp.join(root, 'stanford_cars')
    for sub in ('cars_train', 'cars_test', 'devkit'):
        os.makedirs(osp.join(base, sub))
    cars = ['AM General Hummer SUV 2000', 'Acura RL Sedan 2012']
    for split, folder, ann in (('train', 'cars_train', 'devkit/cars_train_annos.mat'),
                               ('test', 'cars_test', 'cars_test_annos_withlabels.mat')):
        rows = []
        for c in range(len(cars)):
            for i, img in enumerate(_images([c] * per_class, c)):
                fname = f'{split}{c}{i}.jpg'
                Image.fromarray(img).save(osp.join(base, folder, fname))
                rows.append((fname, c + 1))  # the .mat classes start at 1
        annotations = np.array(
            [tuple(r) for r in rows],
            dtype=[('fname', 'O'), ('class', 'O')])
        savemat(osp.join(base, ann), {'annotations': annotations})
    savemat(osp.join(base, 'devkit', 'cars_meta.mat'),
            {'class_names': np.array(cars, dtype=object)})


def write_places365(root, per_class=2):
    names = ['/a/airfield', '/b/bakery']
    os.makedirs(root)
    with open(osp.join(root, 'categories_places365.txt'), 'w') as f:
        f.write(''.join(f'{n} {i}\n' for i, n in enumerate(names)))
    for split, listing, folder in (('train', 'places365_train_standard.txt',
                                    'data_256_standard'),
                                   ('val', 'places365_val.txt', 'val_256')):
        lines = []
        for c, name in enumerate(names):
            for i, img in enumerate(_images([c] * per_class, c)):
                rel = (f'{name}/{i:08d}.jpg' if split == 'train' else
                       f'Places365_val_{c}{i:07d}.jpg')
                path = osp.join(root, folder, rel.lstrip('/'))
                os.makedirs(osp.dirname(path), exist_ok=True)
                Image.fromarray(img).save(path)
                lines.append(f'{rel} {c}')
        with open(osp.join(root, listing), 'w') as f:
            f.write('\n'.join(lines) + '\n')


@pytest.fixture
def no_md5(monkeypatch):
    """Fake files cannot have the real archives' MD5 sums that CIFAR10 and Places365 check."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.places365 as places
    monkeypatch.setattr(cifar, 'check_integrity', lambda *a, **k: True)
    monkeypatch.setattr(places, 'check_integrity', lambda *a, **k: True)


# ------------------------------------------------------------ reference protocol
def reference_features(images_rgb):
    """Features of the tool's backbone (``random``, seed 0) on independently read pixels."""
    from revisit_ssl.evaluation import (FeatureExtractor, ImageNormalizer,
                                        load_backbone, load_config)
    cfg = load_config(CONFIG)
    backbone, _ = load_backbone(cfg, 'random', seed=0)
    extractor = FeatureExtractor(backbone, ImageNormalizer.from_config(cfg))
    bgr = torch.from_numpy(np.ascontiguousarray(images_rgb[..., ::-1]))
    return extractor(bgr.permute(0, 3, 1, 2).contiguous()).numpy()


def reference_probe(train_x, train_y, test_x, test_y, strengths, seed=0):
    """The many-shot protocol with scikit-learn alone: stratified 20% holdout of train,
    a cold fit per L2 strength, the first best (strongest) wins, refit on all of train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    idx = np.arange(len(train_y))
    test_size = max(int(round(0.2 * len(idx))), len(np.unique(train_y)))
    fit, hold = train_test_split(idx, test_size=test_size, random_state=seed,
                                 stratify=train_y)
    fit, hold = np.sort(fit), np.sort(hold)
    scaler = StandardScaler().fit(train_x[fit])
    accs = []
    for lam in strengths:
        clf = LogisticRegression(C=1 / lam, max_iter=5000, tol=1e-10).fit(
            scaler.transform(train_x[fit]), train_y[fit])
        accs.append((clf.predict(scaler.transform(train_x[hold])) ==
                     train_y[hold]).mean() * 100)
    best = strengths[int(np.argmax(accs))]
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(C=1 / best, max_iter=5000, tol=1e-10).fit(
        scaler.transform(train_x), train_y)
    pred = clf.predict(scaler.transform(test_x))
    return dict(top1=(pred == test_y).mean() * 100, best_l2=best, val_top1=accs,
                pred=pred)


WRITERS = dict(cifar10=write_cifar10, oxford_pets=write_oxford_pets,
               food101=write_food101)


@pytest.mark.parametrize('name', sorted(WRITERS))
def test_tool_matches_sklearn_on_fake_layout(name, tmp_path, no_md5, capsys):
    data = WRITERS[name](str(tmp_path / 'data'))
    out = str(tmp_path / 'lp.json')
    # wide L2 grid from 1e5 down: the strongest strengths give chance, so the sweep matters
    result = tool('linear_probe').main([
        CONFIG, 'random', '--dataset', name, '--data-root',
        str(tmp_path / 'data'), '--img-size', str(SIZE), '--num-l2', '6',
        '--l2-min', '1e-1', '--l2-max', '1e4', '--num-workers', '0',
        '--no-progress', '--out', out
    ])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"linear probe top-1: {result['top1']:.2f}%")
    assert result['data']['classes'] == data['classes']
    assert result['data']['num_train'] == len(data['train'][1])
    assert result['selection'] == 'holdout of train'

    train_x = reference_features(data['train'][0])
    test_x = reference_features(data['test'][0])
    ref = reference_probe(train_x, data['train'][1], test_x, data['test'][1],
                          np.array(result['l2_grid']))
    assert result['val_top1'] == pytest.approx(ref['val_top1'])
    assert result['best_l2'] == pytest.approx(ref['best_l2'])
    assert result['top1'] == pytest.approx(ref['top1'])
    # mean per-class accuracy (Ericsson et al.'s Pets metric) from the same predictions
    per_class = [(ref['pred'][data['test'][1] == c] == c).mean()
                 for c in range(len(CLASSES))]
    assert result['mean_per_class_top1'] == pytest.approx(np.mean(per_class) * 100)
    assert result['top1'] > 100 / len(CLASSES)  # colours are learnable
    with open(out) as f:
        assert json.load(f)['top1'] == result['top1']


def test_sun397_reads_the_official_partition(tmp_path):
    from revisit_ssl.evaluation.transfer_datasets import transfer_splits
    from revisit_ssl.evaluation.data import eval_pipeline
    train_rel, test_rel = write_sun397(str(tmp_path))
    train, test, info = transfer_splits('sun397', str(tmp_path),
                                        eval_pipeline(SIZE)[1:])
    assert info['train_split'] == 'Training_01'
    assert train.metainfo['classes'] == ('abbey', 'beach', 'canyon')
    # the partition's images, in its order, with the class of their folder
    paths = [str(train.dataset._image_files[i]) for i in train.indices]
    assert [p[len(str(tmp_path / 'SUN397')):] for p in paths] == train_rel
    assert train.labels.tolist() == [
        ('abbey', 'beach', 'canyon').index(r.split('/')[2]) for r in train_rel]
    assert len(test) == len(test_rel)
    sample = train[0]
    assert tuple(sample['inputs'].shape) == (3, SIZE, SIZE)
    # no partition file: an error, not a silent split
    os.remove(osp.join(tmp_path, 'SUN397', 'Partitions', 'Training_01.txt'))
    with pytest.raises(FileNotFoundError, match='Training_01.txt'):
        transfer_splits('sun397', str(tmp_path), eval_pipeline(SIZE)[1:])


def test_stanford_cars_and_places365_layouts(tmp_path, no_md5):
    from revisit_ssl.evaluation.transfer_datasets import transfer_splits
    pipeline = [dict(type='CenterCrop', crop_size=SIZE), dict(type='PackInputs')]
    write_stanford_cars(str(tmp_path / 'cars'))
    train, test, _ = transfer_splits('stanford_cars', str(tmp_path / 'cars'),
                                     pipeline)
    assert len(train) == len(test) == 4
    assert train.labels.tolist() == [0, 0, 1, 1]
    assert train.metainfo['classes'][1] == 'Acura RL Sedan 2012'
    write_places365(str(tmp_path / 'places'))
    train, test, info = transfer_splits('places365', str(tmp_path / 'places'),
                                        pipeline, small=True)
    assert info['test_split'] == 'val' and len(test) == 4
    assert train.labels.tolist() == [0, 0, 1, 1]
    assert int(test[3]['data_samples'].gt_label) == 1


@pytest.mark.parametrize('name', ['cifar10', 'food101', 'oxford_pets',
                                  'stanford_cars', 'places365', 'sun397',
                                  'voc07'])
def test_missing_root_names_data_root_and_layout(name, tmp_path):
    from revisit_ssl.evaluation.transfer_datasets import DATASET_LAYOUTS
    missing = str(tmp_path / 'nothing_here')
    with pytest.raises(FileNotFoundError) as err:
        tool('linear_probe').main([
            CONFIG, 'random', '--dataset', name, '--data-root', missing,
            '--no-progress', '--num-workers', '0'
        ])
    message = str(err.value)
    assert '--data-root' in message and missing in message
    assert DATASET_LAYOUTS[name] in message


def test_dataset_needs_data_root():
    with pytest.raises(ValueError, match='--data-root'):
        tool('linear_probe').main([CONFIG, 'random', '--dataset', 'cifar10',
                                   '--no-progress'])


def test_voc07_dataset_chooses_on_val_and_refits_on_trainval(tmp_path):
    """``--dataset voc07``: Ericsson et al.'s split use, checked on a VOC tree of the demo
    data under ``DIR/VOCdevkit/VOC2007`` (the folder torchvision's VOCDetection reads)."""
    import shutil
    from revisit_ssl.utils.demo_data import make_demo_data
    make_demo_data(str(tmp_path / 'demo'), formats=('voc', ), num_train=18,
                   num_val=12, seed=1)
    voc = tmp_path / 'data' / 'VOCdevkit'
    voc.mkdir(parents=True)
    shutil.copytree(tmp_path / 'demo' / 'VOCdevkit' / 'VOC2012', voc / 'VOC2007')
    main = voc / 'VOC2007' / 'ImageSets' / 'Main'
    ids = (main / 'train.txt').read_text().split()
    (main / 'train.txt').write_text('\n'.join(ids[:12]) + '\n')
    (main / 'val.txt').write_text('\n'.join(ids[12:]) + '\n')
    (main / 'test.txt').write_text(
        '\n'.join((tmp_path / 'demo' / 'VOCdevkit' / 'VOC2012' / 'ImageSets' /
                   'Main' / 'val.txt').read_text().split()) + '\n')
    result = tool('linear_probe').main([
        CONFIG, 'random', '--dataset', 'voc07', '--data-root',
        str(tmp_path / 'data'), '--img-size', str(SIZE), '--num-l2', '3',
        '--num-workers', '0', '--no-progress', '--out',
        str(tmp_path / 'voc.json')
    ])
    assert result['selection'] == 'validation split'
    assert result['data']['num_train'] == 12 and result['data']['num_val'] == 6
    assert 0 < result['mAP'] <= 100


def test_dataset_refuses_class_folder_split_flags(tmp_path):
    with pytest.raises(ValueError, match='--train-split'):
        tool('linear_probe').main([CONFIG, 'random', '--dataset', 'cifar10',
                                   '--data-root', str(tmp_path), '--test-split',
                                   'test', '--no-progress'])
