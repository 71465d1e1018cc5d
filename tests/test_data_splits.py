"""Splits: disjointness, coverage, stratification, determinism per seed."""

import numpy as np
import pytest

from lpgnas.data import (
    Graph,
    Split,
    default_node_split,
    kfold_splits,
    node_split,
    per_class_split,
    public_split,
    random_split,
)
from lpgnas.errors import ConfigError


def _labels(n=997, c=4, unlabelled=13, seed=0):
    rng = np.random.default_rng(seed)
    lab = rng.choice(c, size=n, p=[0.5, 0.25, 0.15, 0.10]).astype(np.int32)
    lab[rng.choice(n, unlabelled, replace=False)] = -1
    return lab


def _disjoint(s):
    parts = [s.train, s.val, s.test]
    for a in parts:
        assert np.unique(a).shape[0] == a.shape[0]
        assert (np.diff(a) > 0).all()  # sorted
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.intersect1d(parts[i], parts[j]).size


def _same(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))


@pytest.mark.parametrize("fractions,sizes", [((0.6, 0.2, 0.2), (600, 200, 200)),
                                             ((0.1, 0.1, 0.3), (100, 100, 300)),
                                             ((0.5, 0.5, 0.0), (500, 500, 0))])
def test_random_split_sizes(fractions, sizes):
    s = random_split(1000, seed=3, fractions=fractions)
    _disjoint(s)
    assert (s.train.shape[0], s.val.shape[0], s.test.shape[0]) == sizes
    assert np.concatenate([s.train, s.val, s.test]).max() < 1000


def test_random_split_covers_labelled_only_and_is_seeded():
    lab = _labels()
    s = random_split(lab, seed=1)
    _disjoint(s)
    allidx = np.sort(np.concatenate([s.train, s.val, s.test]))
    np.testing.assert_array_equal(allidx, np.flatnonzero(lab >= 0))
    assert _same(s, random_split(lab, seed=1))
    assert not _same(s, random_split(lab, seed=2))


def test_random_split_bad_fractions():
    with pytest.raises(ConfigError, match="fractions"):
        random_split(10, 0, (0.7, 0.4, 0.1))


def test_per_class_split():
    lab = _labels()
    s = per_class_split(lab, seed=0, train_per_class=20, val_per_class=30)
    _disjoint(s)
    np.testing.assert_array_equal(np.bincount(lab[s.train], minlength=4), [20] * 4)
    np.testing.assert_array_equal(np.bincount(lab[s.val], minlength=4), [30] * 4)
    allidx = np.sort(np.concatenate([s.train, s.val, s.test]))
    np.testing.assert_array_equal(allidx, np.flatnonzero(lab >= 0))  # -1 never used
    assert _same(s, per_class_split(lab, seed=0))
    assert not _same(s, per_class_split(lab, seed=1))


def test_per_class_split_small_class():
    lab = np.array([0] * 30 + [1] * 5, np.int32)
    s = per_class_split(lab, seed=0, train_per_class=4, val_per_class=3)
    np.testing.assert_array_equal(np.bincount(lab[s.train]), [4, 4])
    np.testing.assert_array_equal(np.bincount(lab[s.val]), [3, 1])
    np.testing.assert_array_equal(np.bincount(lab[s.test], minlength=2), [23, 0])


@pytest.mark.parametrize("k", [5, 10])
def test_kfold_stratified(k):
    lab = _labels()
    folds = kfold_splits(lab, k=k, seed=0, val_fraction=0.1)
    assert len(folds) == k
    labelled = np.flatnonzero(lab >= 0)
    tests = np.concatenate([f.test for f in folds])
    np.testing.assert_array_equal(np.sort(tests), labelled)  # test parts partition the labelled set
    counts = np.bincount(lab[labelled], minlength=4)
    for f in folds:
        _disjoint(f)
        np.testing.assert_array_equal(np.sort(np.concatenate([f.train, f.val, f.test])), labelled)
        tc = np.bincount(lab[f.test], minlength=4)
        assert (np.abs(tc - counts / k) <= 1).all()  # stratified test part
        trainval = counts - tc
        vc = np.bincount(lab[f.val], minlength=4)
        assert (np.abs(vc - 0.1 * trainval) <= 1).all()  # stratified validation carve-out
    again = kfold_splits(lab, k=k, seed=0)
    assert all(_same(a, b) for a, b in zip(folds, again))
    assert not all(_same(a, b) for a, b in zip(folds, kfold_splits(lab, k=k, seed=1)))


def test_kfold_shipped_folds():
    lab = np.array([0, 1] * 20, np.int32)
    shipped = [(np.arange(0, 30), np.arange(30, 40)), (np.arange(10, 40), np.arange(0, 10))]
    folds = kfold_splits(lab, folds=shipped, val_fraction=0.2, seed=0)
    for f, (tr, te) in zip(folds, shipped):
        np.testing.assert_array_equal(f.test, te)
        np.testing.assert_array_equal(np.sort(np.concatenate([f.train, f.val])), tr)
        np.testing.assert_array_equal(np.bincount(lab[f.val]), [3, 3])
    with pytest.raises(ConfigError, match="folds"):
        kfold_splits(lab, folds=[(np.arange(3), np.array([40]))])


def test_public_split_requires_split():
    import jraph

    g = jraph.GraphsTuple(nodes=np.zeros((2, 1), np.float32), edges=None,
                          senders=np.zeros(0, np.int32), receivers=np.zeros(0, np.int32),
                          n_node=np.array([2]), n_edge=np.array([0]), globals=None)
    with pytest.raises(ConfigError, match="no public split"):
        public_split(Graph(graph=g, labels=np.zeros(2, np.int32), num_classes=1, name="x"))


def _graph(labels, split=None):
    import jraph

    n = labels.shape[0]
    g = jraph.GraphsTuple(nodes=np.zeros((n, 1), np.float32), edges=None, senders=np.zeros(0, np.int32),
                          receivers=np.zeros(0, np.int32), n_node=np.array([n]), n_edge=np.array([0]), globals=None)
    return Graph(graph=g, labels=labels, num_classes=int(labels.max()) + 1, name="g", split=split)


_OWN = Split(train=np.arange(10), val=np.arange(10, 20), test=np.arange(20, 30))


@pytest.mark.parametrize("kind, has_public, expected", [
    ("public", True, lambda lab, seed: _OWN),
    ("random", True, lambda lab, seed: random_split(lab, seed)),
    ("random", False, lambda lab, seed: random_split(lab, seed)),
    ("per-class", False, lambda lab, seed: per_class_split(lab, seed)),
    ("public", False, "no public split"),
    ("Random", True, "unknown node split"),
])
def test_node_split_is_the_one_train_and_search_draw(kind, has_public, expected):
    lab = _labels()
    graph = _graph(lab, _OWN if has_public else None)
    assert default_node_split(graph) == ("public" if has_public else "random")
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected) as e:
            node_split(graph, kind, 0)
        assert e.value.field == "split"
        return
    for seed in (0, 1):
        assert _same(node_split(graph, kind, seed), expected(lab, seed))
