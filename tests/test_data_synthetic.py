"""Synthetic degree-corrected planted-partition graphs."""

import numpy as np
import pytest

from lpgnas.data import load_dataset, synthetic_graph
from lpgnas.data._synthetic import parse_synthetic_spec
from lpgnas.errors import ConfigError


@pytest.fixture(scope="module")
def graph():
    return synthetic_graph(nodes=5000, edges=100000, classes=5, features=8, homophily=0.8,
                           power=2.5, seed=0)


def test_conventions(graph):
    s, r, n = graph.senders, graph.receivers, graph.num_nodes
    assert s.dtype == np.int32 and r.dtype == np.int32 and graph.features.dtype == np.float32
    key = r.astype(np.int64) * n + s
    assert (np.diff(key) > 0).all()  # sorted by receiver, then sender; no duplicates
    assert not (s == r).any()
    np.testing.assert_array_equal(np.sort(s.astype(np.int64) * n + r), key)  # symmetric
    assert 0.85 * 100000 < graph.num_edges <= 100000
    assert graph.features.shape == (5000, 8) and graph.labels.min() == 0 and graph.labels.max() == 4


@pytest.mark.parametrize("h", [0.2, 0.8])
def test_homophily_matches_parameter(h):
    g = synthetic_graph(nodes=4000, edges=60000, classes=4, homophily=h, seed=1)
    measured = float((g.labels[g.senders] == g.labels[g.receivers]).mean())
    assert abs(measured - h) < 0.03


def test_power_law_degrees(graph):
    deg = graph.in_degree()
    # heavy tail: the max degree is far above the mean, unlike an Erdos-Renyi graph
    assert deg.max() > 20 * deg.mean()
    flat = synthetic_graph(nodes=5000, edges=100000, classes=5, power=50.0, seed=0).in_degree()
    assert flat.max() < 3 * flat.mean()


def test_features_carry_class_signal(graph):
    x, y = graph.features, graph.labels
    means = np.stack([x[y == c].mean(axis=0) for c in range(5)])
    pred = np.argmin(((x[:, None, :] - means[None, :, :]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() > 0.4  # chance is 0.2
    quiet = synthetic_graph(nodes=2000, edges=1000, classes=5, features=8, noise=0.0, seed=0)
    assert np.unique(quiet.features, axis=0).shape[0] == 5  # noise 0: the class means exactly


def test_split_and_determinism(graph):
    s = graph.split
    assert (s.train.shape[0], s.val.shape[0], s.test.shape[0]) == (3000, 1000, 1000)
    again = synthetic_graph(nodes=5000, edges=100000, classes=5, features=8, homophily=0.8,
                            power=2.5, seed=0)
    np.testing.assert_array_equal(again.senders, graph.senders)
    np.testing.assert_array_equal(again.features, graph.features)
    other = synthetic_graph(nodes=5000, edges=100000, classes=5, features=8, seed=1)
    assert not np.array_equal(other.labels, graph.labels)


def test_load_dataset_spec():
    g = load_dataset("synthetic:nodes=300,edges=3000,classes=3,features=4,homophily=0.5,seed=2")
    assert (g.num_nodes, g.num_features, g.num_classes) == (300, 4, 3)
    assert g.name.startswith("synthetic:")
    assert parse_synthetic_spec("synthetic:nodes=1e3,power=3") == {"nodes": 1000, "power": 3.0}


@pytest.mark.parametrize("spec,field", [
    ("synthetic:nodes=10,colour=3", "colour"),
    ("synthetic:nodes=ten", "nodes"),
    ("synthetic:nodes=10.5", "nodes"),
    ("synthetic:homophily=high", "homophily"),
    ("synthetic:seed", "seed"),
    ("synthetic:homophily=1.5", "homophily"),
    ("synthetic:power=1", "power"),
    ("synthetic:nodes=4,classes=5", "classes"),
])
def test_bad_spec_names_field(spec, field):
    with pytest.raises(ConfigError) as e:
        load_dataset(spec)
    assert e.value.field == field
