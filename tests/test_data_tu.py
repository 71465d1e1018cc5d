"""TU graph classification: GIN text and original TU files (tiny sets written here + shared data)."""

import time

import numpy as np
import pytest

from lpgnas.data import GraphDataset, dataset_stats, load_dataset
from lpgnas.data._tu import degree_features, load_folds, load_gin_text, load_tu_files
from lpgnas.errors import DataError

# three graphs: a triangle (label 1), an edge (label 0), a path 0-1-2 plus an isolated node (label 1)
GIN = """3
3 1
0 2 1 2
1 2 0 2
0 2 0 1
2 0
2 1 1
0 1 0
4 1
1 1 1
1 2 0 2
0 1 1
2 0
"""
TAGS = [0, 1, 0, 2, 0, 1, 1, 0, 2]
EDGES = [(1, 2), (1, 3), (2, 3), (4, 5), (6, 7), (7, 8)]  # 1-based global ids (TU)


def write_tu(d, prefix="TOY", *, labels=(1, -1, 1), node_labels=True, attrs=None, edges=EDGES,
             indicator=(1, 1, 1, 2, 2, 3, 3, 3, 3)):
    d.mkdir(parents=True, exist_ok=True)
    a = [f"{u}, {v}" for u, v in edges] + [f"{v}, {u}" for u, v in edges]
    (d / f"{prefix}_A.txt").write_text("\n".join(a) + "\n")
    (d / f"{prefix}_graph_indicator.txt").write_text("\n".join(map(str, indicator)) + "\n")
    (d / f"{prefix}_graph_labels.txt").write_text("\n".join(map(str, labels)) + "\n")
    if node_labels:
        (d / f"{prefix}_node_labels.txt").write_text("\n".join(map(str, TAGS)) + "\n")
    if attrs is not None:
        (d / f"{prefix}_node_attributes.txt").write_text(
            "\n".join(", ".join(str(v) for v in row) for row in attrs) + "\n")
    return d


def _edge_set(ds: GraphDataset, i: int):
    g = ds.graph(i)
    return set(zip(g.receivers.tolist(), g.senders.tolist()))


def test_gin_text_tiny(tmp_path):
    p = tmp_path / "TOY.txt"
    p.write_text(GIN)
    ds = load_gin_text(p)
    assert len(ds) == 3 and ds.num_classes == 2
    np.testing.assert_array_equal(ds.n_node, [3, 2, 4])
    np.testing.assert_array_equal(ds.n_edge, [6, 2, 4])
    np.testing.assert_array_equal(ds.labels, [1, 0, 1])
    np.testing.assert_array_equal(ds.nodes, np.eye(3, dtype=np.float32)[TAGS])
    assert _edge_set(ds, 0) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
    assert _edge_set(ds, 2) == {(0, 1), (1, 0), (1, 2), (2, 1)}
    for i in range(3):  # sorted by receiver then sender within each graph
        g = ds.graph(i)
        key = g.receivers.astype(np.int64) * 100 + g.senders
        assert (np.diff(key) > 0).all()
    assert ds.senders.dtype == np.int32 and ds.nodes.dtype == np.float32


def test_tu_files_match_gin_text(tmp_path):
    (tmp_path / "TOY.txt").write_text(GIN)
    a = load_gin_text(tmp_path / "TOY.txt")
    b = load_tu_files(write_tu(tmp_path / "TU"), "TOY")
    for field in ("nodes", "senders", "receivers", "n_node", "n_edge", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_tu_attributes_appended_and_degree_features(tmp_path):
    attrs = np.arange(18, dtype=np.float32).reshape(9, 2) / 4
    ds = load_tu_files(write_tu(tmp_path, node_labels=False, attrs=attrs.tolist()), degree_cap=2)
    # no node labels: one-hot of the degree clipped at 2 (3 columns), then the 2 attributes
    deg = np.array([2, 2, 2, 1, 1, 1, 2, 1, 0])
    np.testing.assert_array_equal(ds.nodes[:, :3], np.eye(3, dtype=np.float32)[np.minimum(deg, 2)])
    np.testing.assert_array_equal(ds.nodes[:, 3:], attrs)


def test_degree_features_cap_column():
    f = degree_features(np.array([0, 0, 0, 1, 2, 2]), 4, cap=2)
    np.testing.assert_array_equal(f, [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_degree_features_normalized_standardises_over_the_set():
    deg = np.array([3, 1, 2, 0])
    f = degree_features(np.array([0, 0, 0, 1, 2, 2]), 4, encoding="normalized")
    assert f.shape == (4, 1) and f.dtype == np.float32
    np.testing.assert_allclose(f[:, 0], (deg - deg.mean()) / deg.std(ddof=1), rtol=1e-6)
    # a constant degree (every node the same) gives zeros, not a division by zero
    np.testing.assert_array_equal(degree_features(np.array([0, 1]), 2, encoding="normalized"), [[0.0], [0.0]])
    with pytest.raises(ValueError, match="degree encoding"):
        degree_features(np.array([0]), 1, encoding="log")


@pytest.mark.parametrize("loader", ["gin", "tu"])
def test_loaders_pass_the_degree_encoding(tmp_path, loader):
    ds = (load_gin_text(_constant_tags_file(tmp_path), degree_encoding="normalized") if loader == "gin"
          else load_tu_files(write_tu(tmp_path, node_labels=False), degree_encoding="normalized"))
    assert ds.num_features == 1
    np.testing.assert_allclose(ds.nodes.mean(), 0.0, atol=1e-6)


def _constant_tags_file(tmp_path):
    p = tmp_path / "T.txt"
    p.write_text("1\n3 0\n5 2 1 2\n5 1 0\n5 1 0\n")
    return p


def test_constant_gin_tags_give_degree_features(tmp_path):
    ds = load_gin_text(_constant_tags_file(tmp_path), degree_cap=64)
    assert ds.num_features == 65
    np.testing.assert_array_equal(ds.nodes.argmax(axis=1), [2, 1, 1])


def test_gin_node_attributes(tmp_path):
    p = tmp_path / "T.txt"
    p.write_text("1\n2 0\n0 1 1 0.5 -1\n1 1 0 2.0 3e-1\n")
    ds = load_gin_text(p)
    np.testing.assert_allclose(ds.nodes, [[1, 0, 0.5, -1], [0, 1, 2.0, 0.3]])


GIN_BAD = [
    ("empty", "", "empty file"),
    ("first-line", "3 1\n", "number of graphs"),
    ("too-few-graphs", GIN.replace("3\n", "4\n", 1), "truncated: the header announces 4 graphs"),
    ("node-count-high", GIN.replace("4 1\n", "5 1\n"), "truncated: graph 2"),
    ("node-count-low", GIN.replace("3 1\n", "2 1\n", 1), "header must be"),
    ("trailing", GIN + "1 0\n", "unexpected content"),
    ("degree-too-large", GIN.replace("0 2 0 1\n", "0 3 0 1\n"), "node degree 3 but 2 neighbour ids"),
    ("neighbour-outside", GIN.replace("0 1 0\n", "0 1 5\n"), "neighbour id 5 points outside"),
    ("negative-neighbour", GIN.replace("0 1 0\n", "0 1 -1\n"), "neighbour id -1 points outside"),
    ("not-a-number", GIN.replace("2 1 1\n", "2 1 x\n"), "line 7: 'x' is not a number"),
    ("float-tag", GIN.replace("2 1 1\n", "2.5 1 1\n"), "node tags must be integers"),
    ("header-fields", GIN.replace("2 0\n2 1 1", "2 0 7\n2 1 1"), "header must be 'num_nodes label'"),
    ("attr-mismatch", "1\n2 0\n0 1 1 0.5\n1 1 0\n", "node attributes"),
    ("one-field-node", "1\n1 0\n7\n", "node line must be"),
]


@pytest.mark.parametrize("text,words", [b[1:] for b in GIN_BAD], ids=[b[0] for b in GIN_BAD])
def test_malformed_gin_text(tmp_path, text, words):
    p = tmp_path / "T.txt"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        load_gin_text(p)
    assert e.value.path == str(p)
    assert words in str(e.value)


TU_BAD = [
    ("graph-id-range", {"indicator": (1, 1, 1, 2, 2, 3, 3, 3, 4)}, "graph_indicator", "graph id 4 out of range"),
    ("unsorted-indicator", {"indicator": (1, 1, 2, 1, 2, 3, 3, 3, 3)}, "graph_indicator", "non-decreasing"),
    ("edge-outside", {"edges": EDGES + [(8, 12)]}, "_A.txt", "points outside"),
    ("edge-cross", {"edges": EDGES + [(3, 4)]}, "_A.txt", "joins two different graphs"),
    ("attr-rows", {"attrs": [[1.0]] * 8}, "node_attributes", "8 node attribute rows, expected 9"),
    ("attr-nan", {"attrs": [[1.0]] * 8 + [["nan"]]}, "node_attributes", "non-finite"),
    ("float-label", {"labels": (1, 0.5, 1)}, "graph_labels", "integers"),
]


@pytest.mark.parametrize("kw,fname,words", [b[1:] for b in TU_BAD], ids=[b[0] for b in TU_BAD])
def test_malformed_tu_files(tmp_path, kw, fname, words):
    write_tu(tmp_path, **kw)
    with pytest.raises(DataError) as e:
        load_tu_files(tmp_path)
    assert fname in e.value.path
    assert words in str(e.value)


def test_tu_missing_file_and_bad_lines(tmp_path):
    write_tu(tmp_path)
    (tmp_path / "TOY_node_labels.txt").write_text("0\n1\n")
    with pytest.raises(DataError, match="node_labels.txt: has 2 node label rows, expected 9"):
        load_tu_files(tmp_path)
    (tmp_path / "TOY_node_labels.txt").unlink()
    (tmp_path / "TOY_A.txt").write_text("1, 2, 3\n")
    with pytest.raises(DataError, match=r"_A.txt: line 1: expected 'row, col'"):
        load_tu_files(tmp_path)
    (tmp_path / "TOY_graph_labels.txt").unlink()
    with pytest.raises(DataError, match="TOY_graph_labels.txt: missing file"):
        load_tu_files(tmp_path)


def _write_folds(d, folds):
    d.mkdir(parents=True)
    for i, (tr, te) in enumerate(folds, start=1):
        (d / f"train_idx-{i}.txt").write_text("\n".join(map(str, tr)) + "\n")
        (d / f"test_idx-{i}.txt").write_text("\n".join(map(str, te)) + "\n")


def test_load_dataset_formats_and_folds(tmp_path):
    d = tmp_path / "mutag"
    write_tu(d / "TU", prefix="MUTAG")
    tu = load_dataset("mutag", tmp_path, download=False)  # only TU files: auto reads them
    with pytest.raises(DataError, match="MUTAG.txt: missing file"):
        load_dataset("mutag", tmp_path, download=False, tu_format="gin")
    (d / "MUTAG.txt").write_text(GIN.replace("3 1\n", "3 0\n", 1))  # differs: graph 0 label
    assert load_dataset("mutag", tmp_path, download=False).labels.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(load_dataset("mutag", tmp_path, tu_format="tu").labels, tu.labels)
    assert tu.folds is None
    _write_folds(d / "10fold_idx", [([0, 1], [2]), ([2], [0, 1])])
    ds = load_dataset("mutag", tmp_path, download=False)
    assert len(ds.folds) == 2
    np.testing.assert_array_equal(ds.folds[1][1], [0, 1])


@pytest.mark.parametrize("folds,words", [
    ([([0, 1], [3])], "graph index 3 out of range"),
    ([([0, 1], [1, 2])], "overlap"),
])
def test_bad_folds(tmp_path, folds, words):
    _write_folds(tmp_path / "f", folds)
    with pytest.raises(DataError, match=words):
        load_folds(tmp_path / "f", 3)


# ------------------------------------------------------------------------------- shared data

SHARED = [
    # name, graphs, class counts, avg nodes, avg undirected edges, max nodes, features
    ("mutag", 188, [63, 125], 17.93, 19.79, 28, 7),
    ("proteins", 1113, [663, 450], 39.06, 72.82, 620, 3),
    ("reddit-binary", 2000, [1000, 1000], 429.63, 497.75, 3782, 65),
]


@pytest.mark.parametrize("name,graphs,counts,avg_n,avg_e,max_n,features", SHARED,
                         ids=[s[0] for s in SHARED])
def test_shared_tu_statistics(data_root, name, graphs, counts, avg_n, avg_e, max_n, features):
    t0 = time.perf_counter()
    ds = load_dataset(name, data_root, download=False)
    elapsed = time.perf_counter() - t0
    st = dataset_stats(ds)
    assert (st["graphs"], st["class_counts"], st["max_nodes"], st["features"]) == (graphs, counts, max_n, features)
    assert st["avg_nodes"] == pytest.approx(avg_n, abs=0.005)
    assert st["avg_edges"] == pytest.approx(avg_e, abs=0.005)
    assert elapsed < 10.0, f"{name} took {elapsed:.1f}s"


@pytest.mark.parametrize("name,extra_cols", [("mutag", 0), ("proteins", 1)])
def test_shared_gin_and_tu_formats_agree(data_root, name, extra_cols):
    gin = load_dataset(name, data_root, download=False, tu_format="gin")
    tu = load_dataset(name, data_root, download=False, tu_format="tu")
    for field in ("senders", "receivers", "n_node", "n_edge", "labels"):
        np.testing.assert_array_equal(getattr(gin, field), getattr(tu, field), err_msg=field)
    # TU PROTEINS carries one node attribute on top of the node-label one-hot
    assert tu.num_features == gin.num_features + extra_cols
    np.testing.assert_array_equal(gin.nodes, tu.nodes[:, :gin.num_features])


def test_shared_proteins_folds(data_root):
    ds = load_dataset("proteins", data_root, download=False)
    assert len(ds.folds) == 10
    tests = np.concatenate([te for _, te in ds.folds])
    # the shipped folds test 10 x 111 graphs, disjoint (3 graphs are never tested)
    assert tests.shape[0] == 1110 and np.unique(tests).shape[0] == 1110
    for tr, te in ds.folds:
        assert tr.shape[0] + te.shape[0] == 1113 and not np.intersect1d(tr, te).size
