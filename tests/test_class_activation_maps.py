"""Class activation maps (Zhou et al. 2016, the paper's Figure 6): the maths against independent
numpy computations on constructed feature maps, the saved probe against scikit-learn, and the
two tools end to end (``linear_probe.py --save-probe``, ``class_activation_maps.py``)."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from revisit_ssl.evaluation import export_probe
from revisit_ssl.evaluation.class_activation_maps import (
    GRID_CAPTION, GRID_HEADER, cam_grid, class_activation_map, load_probe,
    normalize_cam, probe_logits, upsample_cam)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'knn_moco_demo.py')


def tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_cam_tool_{name}', osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numpy_bilinear(x, out_h, out_w):
    """PyTorch's ``align_corners=False`` bilinear resize written out: half-pixel centres,
    negative source coordinates clamped to 0, the last row / column repeated."""
    in_h, in_w = x.shape

    def taps(out_n, in_n):
        src = np.maximum((np.arange(out_n) + 0.5) * in_n / out_n - 0.5, 0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, in_n - 1)
        return lo, hi, src - lo

    y0, y1, wy = taps(out_h, in_h)
    x0, x1, wx = taps(out_w, in_w)
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bottom = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def test_cam_equals_independent_einsum_upsampling_and_normalisation():
    rng = np.random.default_rng(0)
    fmap = rng.standard_normal((3, 8, 4, 5)).astype(np.float32)
    weight = rng.standard_normal((6, 8)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    classes = [1, 4, 0]
    logits, scale = probe_logits(torch.from_numpy(fmap), torch.from_numpy(weight),
                                 torch.from_numpy(bias), l2_normalize=True)
    cams = class_activation_map(torch.from_numpy(fmap), torch.from_numpy(weight),
                                classes, scale)
    for n, c in enumerate(classes):
        pooled = fmap[n].mean(axis=(1, 2))
        s = 1 / np.linalg.norm(pooled)
        assert scale[n].item() == pytest.approx(s, rel=1e-5)
        np.testing.assert_allclose(logits[n].numpy(), s * weight @ pooled + bias,
                                   rtol=1e-5, atol=1e-5)
        expected = s * np.einsum('d,dhw->hw', weight[c], fmap[n])
        np.testing.assert_allclose(cams[n].numpy(), expected, rtol=1e-5, atol=1e-5)
        up = numpy_bilinear(expected.astype(np.float64), 37, 23)
        np.testing.assert_allclose(upsample_cam(cams[n], (37, 23)).numpy(), up,
                                   rtol=1e-4, atol=1e-5)
        norm = (up - up.min()) / (up.max() - up.min())
        np.testing.assert_allclose(normalize_cam(upsample_cam(cams[n], (37, 23))).numpy(),
                                   norm, atol=1e-5)
    assert normalize_cam(torch.full((3, 3), 2.0)).abs().max() == 0  # constant -> zeros


@pytest.mark.parametrize('l2', [True, False])
def test_cam_mean_is_logit_minus_bias_and_prediction_is_the_probe_argmax(l2):
    """Over many random draws: with global average pooling, the spatial mean of every class's
    map is its logit minus its bias, so the predicted class is the arg-max of
    ``mean(M_c) + b_c``."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        d, c = int(torch.randint(2, 20, (1, ), generator=gen)), int(
            torch.randint(2, 9, (1, ), generator=gen))
        fmap = torch.randn(2, d, 3, 7, generator=gen).abs()  # post-ReLU like
        weight, bias = torch.randn(c, d, generator=gen), torch.randn(c, generator=gen)
        logits, scale = probe_logits(fmap, weight, bias, l2)
        for n in range(2):
            cams = class_activation_map(fmap[n:n + 1].expand(c, -1, -1, -1), weight,
                                        range(c), scale[n].expand(c))
            torch.testing.assert_close(cams.mean(dim=(1, 2)), logits[n] - bias,
                                       rtol=1e-5, atol=1e-5)
            assert int((cams.mean(dim=(1, 2)) + bias).argmax()) == int(logits[n].argmax())


@pytest.mark.parametrize('num_classes', [2, 4])
def test_exported_probe_reproduces_sklearn_decision_function(num_classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(num_classes)
    x = rng.standard_normal((80, 6)) * rng.uniform(0.1, 5, 6) + rng.uniform(-3, 3, 6)
    y = rng.integers(0, num_classes, 80)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(x), y)
    probe = export_probe(scaler, clf, [f'c{i}' for i in range(num_classes)], note=1)
    logits = x @ probe['weight'].double().numpy().T + probe['bias'].double().numpy()
    decision = clf.decision_function(scaler.transform(x))
    if num_classes == 2:  # one scikit-learn logit: class 1 against a zero class 0
        np.testing.assert_allclose(logits[:, 1] - logits[:, 0], decision, rtol=1e-4,
                                   atol=1e-4)
    else:
        np.testing.assert_allclose(logits, decision, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == clf.predict(scaler.transform(x))).all()
    assert probe['classes'] == [f'c{i}' for i in range(num_classes)]


def test_grid_layout():
    tiles = [[np.full((10, 12, 3), v, np.uint8) for v in (0, 80, 160)]
             for _ in range(2)]
    grid = cam_grid(tiles, [['a', 'b', 'c']] * 2, ['image', 'moco', 'mc'], 40)
    assert grid.shape == (GRID_HEADER + 2 * (40 + GRID_CAPTION), 3 * 40, 3)
    # each tile lands in its cell, resized to the tile size
    top = GRID_HEADER + (40 + GRID_CAPTION)
    assert (grid[top:top + 40, 40:80] == 80).all()
    with pytest.raises(ValueError, match='3 tiles'):
        cam_grid([tiles[0][:2]], [['a', 'b']], ['image', 'moco', 'mc'], 40)


@pytest.fixture(scope='module')
def probe_file(demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('probe')
    path = str(out / 'probe.pth')
    result = tool('linear_probe').main([
        CONFIG, 'random', '--data-root', demo_root, '--img-size', '64',
        '--num-l2', '3', '--num-workers', '0', '--no-progress', '--out',
        str(out / 'lp.json'), '--save-probe', path
    ])
    return path, result


def test_cam_tool_end_to_end(probe_file, demo_root, tmp_path, capsys):
    from revisit_ssl.evaluation import (FeatureExtractor, ImageNormalizer,
                                        load_backbone, load_config)
    path, probe_result = probe_file
    probe = load_probe(path)
    assert probe['classes'] == probe_result['data']['classes']
    assert probe['meta']['features']['l2_normalize'] is True
    images = osp.join(demo_root, 'val', probe['classes'][0])
    out_dir = str(tmp_path / 'cams')
    result = tool('class_activation_maps').main([
        CONFIG, 'random', 'random', '--probe', path, path, '--images', images,
        '--out-dir', out_dir, '--max-images', '3', '--no-progress'
    ])
    grid = cv2.imread(result['grid'])
    tile = result['tile']
    assert tile == 128  # the 64 px crop, raised to the minimum tile
    assert grid.shape == (GRID_HEADER + 3 * (tile + GRID_CAPTION), 3 * tile, 3)
    with open(osp.join(out_dir, 'cams.json')) as f:
        saved = json.load(f)
    assert len(saved['images']) == 3

    # the predicted class is the arg-max of the probe (unfolded: standardise, then the
    # scikit-learn coefficients) on the pooled, L2-normalised features of the same crop
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope
    cfg = load_config(CONFIG)
    backbone, _ = load_backbone(cfg, 'random', seed=0)
    pooled = FeatureExtractor(backbone, ImageNormalizer.from_config(cfg))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(probe['meta']['pipeline'])
    for record in saved['images']:
        x = pooled(pipeline(dict(img_path=record['image']))['inputs'][None])[0]
        z = (x - probe['scaler_mean']) / probe['scaler_scale']
        logits = probe['coef'] @ z + probe['intercept']
        for entry in record['checkpoints']:
            assert entry['predicted'] == probe['classes'][int(logits.argmax())]
            assert entry['class_name'] == entry['predicted']
            # the spatial mean of the shown map is the logit minus the bias
            assert entry['cam_mean'] == pytest.approx(
                entry['logit'] - float(probe['bias'][entry['class_index']]),
                abs=1e-4)
            assert entry['feature_size'] == [2, 2]  # 64 px at output stride 32
    # --class shows that class for every image
    chosen = probe['classes'][-1]
    result = tool('class_activation_maps').main([
        CONFIG, 'random', '--probe', path, '--images', images, '--out-dir',
        out_dir, '--max-images', '2', '--class', chosen, '--no-progress'
    ])
    assert all(r['checkpoints'][0]['class_name'] == chosen
               for r in result['images'])
    assert cv2.imread(result['grid']).shape == (
        GRID_HEADER + 2 * (tile + GRID_CAPTION), 2 * tile, 3)


def test_cam_tool_bad_input(probe_file, demo_root, tmp_path):
    path, _ = probe_file
    images = osp.join(demo_root, 'val')
    run = tool('class_activation_maps').main
    with pytest.raises(ValueError, match='one probe per checkpoint'):
        run([CONFIG, 'random', 'random', '--probe', path, '--images', images,
             '--out-dir', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='--save-probe'):
        run([CONFIG, 'random', '--probe', str(tmp_path / 'none.pth'), '--images',
             images, '--out-dir', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='--images'):
        run([CONFIG, 'random', '--probe', path, '--images', str(tmp_path / 'no'),
             '--out-dir', str(tmp_path)])
    with pytest.raises(ValueError, match='--class'):
        run([CONFIG, 'random', '--probe', path, '--images',
             osp.join(images, sorted(__import__('os').listdir(images))[0]),
             '--out-dir', str(tmp_path), '--class', 'no_such_class',
             '--no-progress'])


def test_cam_tool_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool('class_activation_maps').parse_args(['--help'])
    assert exit_info.value.code == 0
    assert '--probe' in capsys.readouterr().out
