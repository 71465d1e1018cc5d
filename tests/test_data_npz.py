"""gnn-benchmark .npz loader: the shared Amazon Photo file and tiny files written here."""

import numpy as np
import pytest
import scipy.sparse as sp

from lpgnas.data import load_dataset
from lpgnas.data._npz import load_npz_graph
from lpgnas.errors import DataError


def tiny_arrays():
    # directed, non-symmetric adjacency with a diagonal entry and a reciprocal pair
    adj = sp.csr_matrix(np.array([[1, 1, 0, 0],
                                  [1, 0, 1, 0],
                                  [0, 0, 0, 0],
                                  [1, 0, 0, 0]], np.float32))
    attr = sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0], [0.5, 0, 3]], np.float32))
    return {
        "adj_data": adj.data, "adj_indices": adj.indices, "adj_indptr": adj.indptr,
        "adj_shape": np.array(adj.shape),
        "attr_data": attr.data, "attr_indices": attr.indices, "attr_indptr": attr.indptr,
        "attr_shape": np.array(attr.shape),
        "labels": np.array([0, 1, 1, 2]), "class_names": np.array(["a", "b", "c"]),
    }


def write(path, **override):
    arrays = tiny_arrays()
    for k, v in override.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path, **arrays)
    return path


def test_tiny_npz_symmetrised_without_diagonal(tmp_path):
    g = load_npz_graph(write(tmp_path / "g.npz"), "toy")
    pairs = list(zip(g.receivers.tolist(), g.senders.tolist()))
    assert pairs == sorted(pairs)
    assert set(pairs) == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 3), (3, 0)}
    np.testing.assert_array_equal(g.features, [[0, 2, 0], [1, 0, 0], [0, 0, 0], [0.5, 0, 3]])
    assert g.features.dtype == np.float32 and g.num_classes == 3 and g.split is None
    np.testing.assert_array_equal(g.labels, [0, 1, 1, 2])


BAD = [
    ("label-out-of-range", {"labels": np.array([0, 1, 1, 5])}, "out of range"),
    ("negative-label", {"labels": np.array([0, -1, 1, 2])}, "out of range"),
    ("float-labels", {"labels": np.array([0.0, 1.0, 1.0, 2.0])}, "integers"),
    ("label-rows", {"labels": np.array([0, 1, 1])}, "labels have shape"),
    ("nan-features", {"attr_data": np.array([2, 1, np.nan, 3], np.float32)}, "non-finite"),
    ("feature-rows", {"attr_shape": np.array([3, 3]), "attr_indptr": np.array([0, 1, 2, 2]),
                      "attr_data": np.array([2, 1], np.float32), "attr_indices": np.array([1, 0])},
     "3 rows but the adjacency has 4"),
    ("edge-outside", {"adj_indices": np.array([0, 1, 0, 7, 0], np.int32)}, "outside"),
    ("indptr-length", {"adj_indptr": np.array([0, 2, 4, 5])}, "indptr"),
    ("missing-key", {"labels": None}, "missing array 'labels'"),
    ("missing-features", {"attr_data": None}, "attr_data"),
]


@pytest.mark.parametrize("override,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_npz_raises_data_error(tmp_path, override, words):
    p = write(tmp_path / "g.npz", **override)
    with pytest.raises(DataError) as e:
        load_npz_graph(p)
    assert e.value.path == str(p)
    assert words in str(e.value)


def test_not_an_archive(tmp_path):
    p = tmp_path / "g.npz"
    p.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="g.npz"):
        load_npz_graph(p)


def test_object_arrays_are_never_unpickled(tmp_path):
    p = write(tmp_path / "g.npz", class_names=np.array(["a", None, "c"], dtype=object))
    g = load_npz_graph(p)  # names are skipped, the graph still loads
    assert g.num_classes == 3


def test_shared_amazon_photo(data_root):
    g = load_dataset("amazon-photo", data_root, download=False)
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (7650, 238162, 745, 8)
    assert g.split is None and g.features.dtype == np.float32
    key = g.receivers.astype(np.int64) * g.num_nodes + g.senders
    assert (np.diff(key) > 0).all() and not (g.senders == g.receivers).any()
