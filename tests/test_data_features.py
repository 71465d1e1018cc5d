"""Feature helpers, dataset_stats and the public API of lpgnas.data."""

import jraph
import numpy as np
import pytest

import lpgnas.data as data
from lpgnas.data import DATASETS, Graph, GraphDataset, dataset_stats, load_dataset, row_normalize
from lpgnas.errors import ConfigError


@pytest.mark.parametrize("x,want", [
    ([[1, 1, 2], [0, 0, 0], [0, 3, 0]], [[0.25, 0.25, 0.5], [0, 0, 0], [0, 1, 0]]),
    ([[2.0, -1.0]], [[2.0, -1.0]]),  # sums to 1 already
    ([[1.0, -1.0]], [[1.0, -1.0]]),  # zero sum: left unchanged
])
def test_row_normalize(x, want):
    out = row_normalize(np.asarray(x, np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want)


def test_row_normalize_rows_sum_to_one():
    x = np.random.default_rng(0).random((50, 7)).astype(np.float32)
    x[3] = 0
    s = row_normalize(x).sum(axis=1)
    np.testing.assert_allclose(np.delete(s, 3), 1.0, rtol=1e-6)
    assert s[3] == 0


def test_stats_graph_and_dataset():
    g = jraph.GraphsTuple(nodes=np.zeros((4, 2), np.float32), edges=None,
                          senders=np.array([1, 0, 2, 1], np.int32), receivers=np.array([0, 1, 1, 2], np.int32),
                          n_node=np.array([4], np.int32), n_edge=np.array([4], np.int32), globals=None)
    st = dataset_stats(Graph(graph=g, labels=np.array([0, 1, 1, -1], np.int32), num_classes=2, name="g"))
    assert st["nodes"] == 4 and st["edges"] == 4 and st["undirected_edges"] == 2
    assert st["labelled"] == 3 and st["class_counts"] == [1, 2] and st["isolated"] == 1 and st["max_degree"] == 2
    ds = GraphDataset(nodes=np.zeros((5, 1), np.float32), senders=np.array([1, 0], np.int32),
                      receivers=np.array([0, 1], np.int32), n_node=np.array([2, 3], np.int32),
                      n_edge=np.array([2, 0], np.int32), labels=np.array([1, 1], np.int32), num_classes=2)
    st = dataset_stats(ds)
    assert (st["graphs"], st["class_counts"], st["avg_nodes"], st["avg_edges"], st["max_nodes"]) == \
        (2, [0, 2], 2.5, 0.5, 3)
    with pytest.raises(TypeError):
        dataset_stats([1, 2])


def test_public_api():
    for name in data.__all__:
        assert hasattr(data, name), name
    assert {"Graph", "GraphDataset", "Split", "PaddedBatch", "Bucket", "resolve_data_root", "load_dataset",
            "DATASETS", "DEGREE_ENCODINGS", "row_normalize", "public_split", "random_split", "per_class_split",
            "kfold_splits", "make_buckets", "iterate_batches", "dataset_stats", "synthetic_graph"} <= set(data.__all__)
    assert {"cora", "citeseer", "pubmed", "amazon-photo", "coauthor-physics", "mutag", "proteins",
            "reddit-binary", "imdb-binary", "collab", "ptc"} <= set(DATASETS)


@pytest.mark.parametrize("name,kw,field", [
    ("imagenet", {}, "dataset"),
    ("mutag", {"tu_format": "xml"}, "tu_format"),
    ("mutag", {"degree_cap": 0}, "degree_cap"),
    ("mutag", {"degree_encoding": "log"}, "degree_encoding"),
])
def test_load_dataset_config_errors(tmp_path, name, kw, field):
    with pytest.raises(ConfigError) as e:
        load_dataset(name, tmp_path, download=False, **kw)
    assert e.value.field == field
