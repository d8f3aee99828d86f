"""ParetoLongTailDataset and UniformSubsetDataset on small synthetic labelled datasets."""
import numpy as np
import pytest
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from revisit_ssl.datasets.wrappers import (IMAGENET_LT, UniformSubsetDataset,
                                           balanced_class_quota, pareto_class_counts)


@DATASETS.register_module(name='_SyntheticLabelledDataset', force=True)
class _SyntheticLabelledDataset(BaseDataset):
    """``per_class[c]`` fake samples of class ``c`` (no files; the pipeline is not run)."""

    def __init__(self, per_class=(60, ) * 12, labelled=True, **kwargs):
        self.per_class = list(per_class)
        self.labelled = labelled
        classes = [f'class_{c}' for c in range(len(self.per_class))]
        # serialize_data=False skips a gc.collect() that costs ~0.5 s per build under pytest.
        super().__init__(
            ann_file='', metainfo=dict(classes=classes), serialize_data=False, **kwargs)

    def load_data_list(self):
        data = []
        for label, count in enumerate(self.per_class):
            for i in range(count):
                info = dict(img_path=f'class_{label}/{i}.jpg')
                if self.labelled:
                    info['gt_label'] = label
                data.append(info)
        return data


SMALL_LT = dict(max_count=50, min_count=3, total=200)


def _pareto(seed=0, **kwargs):
    cfg = dict(type='ParetoLongTailDataset', seed=seed,
               dataset=dict(type='_SyntheticLabelledDataset'), **SMALL_LT)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_imagenet_lt_profile():
    counts = pareto_class_counts(**IMAGENET_LT)
    assert counts.sum() == 115846 and counts.max() == 1280 and counts.min() == 5
    assert (np.diff(counts) <= 0).all()
    # ImageNet-LT has 385 / 479 / 136 many- / medium- / few-shot classes.
    many, few = int((counts > 100).sum()), int((counts < 20).sum())
    assert abs(many - 385) <= 10 and abs(few - 136) <= 10, (many, few)
    derived = pareto_class_counts(1000)  # total derived from the head quantile 1 - 1/C
    assert 110000 < derived.sum() < 130000


@pytest.mark.parametrize('num_classes, max_count, min_count, total', [
    (12, 50, 3, 200), (12, 50, 3, None), (20, 30, 2, 150), (7, 9, 1, 30), (2, 10, 4, None)
])
def test_pareto_counts_invariants(num_classes, max_count, min_count, total):
    counts = pareto_class_counts(num_classes, 6., max_count, min_count, total)
    assert len(counts) == num_classes
    assert (np.diff(counts) <= 0).all()
    assert counts[0] == max_count and counts[-1] == min_count
    if total is not None:
        assert abs(counts.sum() - total) <= 0.01 * total


def test_pareto_counts_reject_unreachable_total():
    with pytest.raises(ValueError, match='cannot be reached'):
        pareto_class_counts(12, 6., 50, 3, total=40)
    with pytest.raises(ValueError, match='cannot be reached'):
        pareto_class_counts(12, 6., 50, 3, total=400)


def test_pareto_dataset_counts_and_determinism():
    dataset = _pareto(seed=0)
    counts = dataset.get_class_counts()
    sorted_counts = np.sort(counts)[::-1]
    assert (np.diff(sorted_counts) <= 0).all()
    assert counts.max() == 50 and counts.min() == 3
    assert abs(len(dataset) - 200) <= 2 and counts.sum() == len(dataset)
    # The counts really describe the selected samples.
    labels = [dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))]
    assert np.array_equal(np.bincount(labels, minlength=12), counts)
    assert len(set(dataset.indices)) == len(dataset)  # no duplicates

    same = _pareto(seed=0)
    assert same.indices == dataset.indices
    other = _pareto(seed=1)
    head = np.argsort(-counts, kind='stable')[:3].tolist()
    other_head = np.argsort(-other.get_class_counts(), kind='stable')[:3].tolist()
    assert head != other_head
    # Over several seeds, the head class moves around (it is a seeded permutation).
    heads = {int(np.argmax(_pareto(seed=s).get_class_counts())) for s in range(6)}
    assert len(heads) >= 3


def test_pareto_same_class_quota_different_images_for_same_order():
    # Images inside a class are a seeded sample: the whole subset is a function of the seed.
    first, second = _pareto(seed=3), _pareto(seed=3)
    assert [first.get_data_info(i)['img_path'] for i in range(len(first))] == [
        second.get_data_info(i)['img_path'] for i in range(len(second))]


def test_pareto_too_small_class_names_class_and_numbers():
    per_class = [60] * 11 + [2]
    with pytest.raises(ValueError) as info:
        _pareto(seed=0, dataset=dict(type='_SyntheticLabelledDataset', per_class=per_class),
                total=None, max_count=50, min_count=3)
    message = str(info.value)
    assert "class 11 ('class_11') has 2 images but its quota is" in message
    assert 'allow_smaller' in message
    kept = _pareto(seed=0, dataset=dict(type='_SyntheticLabelledDataset',
                                        per_class=per_class),
                   total=None, allow_smaller=True)
    assert kept.get_class_counts()[11] == 2
    assert kept.get_class_counts().sum() < kept.class_quota.sum()


def test_pareto_needs_labels_and_lazy_init():
    with pytest.raises(ValueError, match='needs class labels'):
        _pareto(dataset=dict(type='_SyntheticLabelledDataset', labelled=False))
    lazy = _pareto(lazy_init=True)
    assert not lazy._fully_initialized
    assert len(lazy) == len(_pareto())  # first use initialises
    assert lazy._fully_initialized


def test_uniform_subset_class_balanced_and_deterministic():
    cfg = dict(type='UniformSubsetDataset', num_samples=50, seed=0,
               dataset=dict(type='_SyntheticLabelledDataset', per_class=[30] * 10))
    dataset = DATASETS.build(cfg)
    counts = dataset.get_class_counts()
    assert len(dataset) == 50 and (counts == 5).all()
    assert DATASETS.build(cfg).indices == dataset.indices
    assert DATASETS.build(dict(cfg, seed=1)).indices != dataset.indices


def test_uniform_subset_water_fills_small_classes():
    rng = np.random.default_rng(0)
    quota = balanced_class_quota(np.array([2, 50, 50, 50, 3]), 23, rng)
    assert quota.sum() == 23 and quota[0] == 2 and quota[4] == 3
    assert quota[1:4].max() - quota[1:4].min() <= 1
    dataset = UniformSubsetDataset(
        dict(type='_SyntheticLabelledDataset', per_class=[2, 50, 50, 50, 3]), num_samples=23)
    assert dataset.get_class_counts().tolist()[0] == 2 and len(dataset) == 23


def test_uniform_subset_without_labels_and_errors():
    unlabelled = dict(type='_SyntheticLabelledDataset', per_class=[20] * 5, labelled=False)
    dataset = UniformSubsetDataset(unlabelled, num_samples=30, seed=4)
    assert len(dataset) == 30 and len(set(dataset.indices)) == 30
    assert max(dataset.indices) < 100
    with pytest.raises(ValueError, match='no labels'):
        dataset.get_class_counts()
    with pytest.raises(ValueError, match='needs labels'):
        UniformSubsetDataset(unlabelled, num_samples=30, class_balanced=True)
    with pytest.raises(ValueError, match='only 100 images'):
        UniformSubsetDataset(unlabelled, num_samples=101)
    # Uniform sampling of a labelled set when balancing is switched off.
    plain = UniformSubsetDataset(dict(unlabelled, labelled=True), num_samples=30,
                                 class_balanced=False, seed=4)
    assert plain.indices == dataset.indices


def test_unlabelled_image_folder_runs_the_pipeline(demo_root):
    # COCO / BDD100K / OpenImages layouts: a folder of images, CustomDataset without labels.
    dataset = DATASETS.build(
        dict(type='UniformSubsetDataset', num_samples=5, seed=0,
             dataset=dict(type='CustomDataset', data_root=demo_root, data_prefix='train',
                          with_label=False,
                          pipeline=[dict(type='LoadImageFromFile'),
                                    dict(type='ConstrainedMultiCrop', large_size=16,
                                         small_size=8),
                                    dict(type='PackInputs')])))
    assert len(dataset) == 5
    assert len(dataset[0]['inputs']) == 6


def test_plot_class_counts_tool(tmp_path, project_root):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'plot_class_counts', f'{project_root}/tools/analysis/plot_class_counts.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'counts.png'
    counts = tool.main(['--num-classes', '12', '--max-count', '50', '--min-count', '3',
                        '--total', '200', '--out', str(out)])
    assert out.stat().st_size > 1000 and counts.sum() == 200
    rows = (tmp_path / 'counts.csv').read_text().splitlines()
    assert rows[0] == 'rank,images' and rows[1] == '0,50' and rows[-1] == '11,3'
    # From a config: the histogram of the built ParetoLongTailDataset.
    config = tmp_path / 'lt.py'
    config.write_text(
        "train_dataloader = dict(dataset=dict(type='ParetoLongTailDataset', max_count=50, "
        "min_count=3, total=200, seed=0, dataset=dict(type='_SyntheticLabelledDataset')))\n")
    from_config = tool.main(['--config', str(config), '--out', str(tmp_path / 'cfg.png')])
    assert np.array_equal(from_config, _pareto(seed=0).get_class_counts())
