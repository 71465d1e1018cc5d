"""Planetoid loader: the shared Cora / CiteSeer files and tiny sets written here (protocol-2 pickles)."""

import collections
import pathlib
import pickle
import time

import numpy as np
import pytest
import scipy.sparse as sp

from lpgnas.data import load_dataset, public_split
from lpgnas.data._pickle import load_pickle
from lpgnas.data._planetoid import load_planetoid
from lpgnas.errors import DataError

# ----------------------------------------------------------------------------- tiny Planetoid set
# 6 rows in allx (2 training), test ids {6, 8, 9} listed as 9, 6, 8 -> id 7 is a CiteSeer-style gap.
F, C = 4, 3
TEST_INDEX = [9, 6, 8]


def _onehot(labels):
    y = np.zeros((len(labels), C), dtype=np.int32)
    y[np.arange(len(labels)), labels] = 1
    return y


def tiny_parts():
    rng = np.random.default_rng(0)
    allx = (rng.random((6, F)) < 0.5).astype(np.float32)
    tx = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    ally = _onehot([0, 1, 2, 0, 1, 2])
    ty = _onehot([2, 0, 1])
    graph = collections.defaultdict(list)
    # 0-1 twice (duplicate), 2->3 one way only, a self loop 4-4, test nodes 6-9 and 8-5
    for a, b in [(0, 1), (1, 0), (0, 1), (2, 3), (4, 4), (6, 9), (9, 6), (8, 5), (5, 8)]:
        graph[a].append(b)
    return {
        "x": sp.csr_matrix(allx[:2]), "y": ally[:2], "allx": sp.csr_matrix(allx), "ally": ally,
        "tx": sp.csr_matrix(tx), "ty": ty, "graph": graph,
    }


def write_planetoid(d: pathlib.Path, name="toy", parts=None, test_index=None, skip=()):
    d.mkdir(parents=True, exist_ok=True)
    parts = tiny_parts() if parts is None else parts
    for key, obj in parts.items():
        if key in skip:
            continue
        with open(d / f"ind.{name}.{key}", "wb") as f:
            pickle.dump(obj, f, protocol=2)
    if "test.index" not in skip:
        (d / f"ind.{name}.test.index").write_text(
            "\n".join(str(i) for i in (TEST_INDEX if test_index is None else test_index)) + "\n")
    return d


def test_tiny_assembly(tmp_path):
    parts = tiny_parts()
    g = load_planetoid(write_planetoid(tmp_path), "toy")
    assert g.num_nodes == 10 and g.num_features == F and g.num_classes == C
    x, lab = g.features, g.labels
    np.testing.assert_array_equal(x[:6], parts["allx"].toarray())
    np.testing.assert_array_equal(lab[:6], [0, 1, 2, 0, 1, 2])
    # test node test.index[i] gets row i of tx / ty
    np.testing.assert_array_equal(x[TEST_INDEX], parts["tx"].toarray())
    np.testing.assert_array_equal(lab[TEST_INDEX], [2, 0, 1])
    # the gap id 7 is an isolated node with a zero row and no label
    assert lab[7] == -1 and not x[7].any()
    # edges: symmetric, deduplicated, no self loop, sorted by receiver then sender
    pairs = sorted(zip(g.receivers.tolist(), g.senders.tolist()))
    assert list(zip(g.receivers.tolist(), g.senders.tolist())) == pairs
    assert set(pairs) == {(0, 1), (1, 0), (2, 3), (3, 2), (6, 9), (9, 6), (5, 8), (8, 5)}
    assert g.senders.dtype == np.int32 and x.dtype == np.float32 and lab.dtype == np.int32
    s = public_split(g)
    np.testing.assert_array_equal(s.train, [0, 1])
    np.testing.assert_array_equal(s.val, [2, 3, 4, 5])
    np.testing.assert_array_equal(s.test, [6, 8, 9])


def _replace(key, obj):
    parts = tiny_parts()
    parts[key] = obj
    return parts


class _Evil:
    def __reduce__(self):
        return (print, ("never",))


def _truncate(d):
    p = d / "ind.toy.allx"
    p.write_bytes(p.read_bytes()[:40])


def _garbage(d):
    (d / "ind.toy.ty").write_bytes(b"\x80\x02this is not a pickle")


def _evil(d):
    with open(d / "ind.toy.graph", "wb") as f:
        pickle.dump(_Evil(), f, protocol=2)


def _os_system(d):
    # a classic payload: GLOBAL os.system + REDUCE
    (d / "ind.toy.x").write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")


def _nan(d):
    allx = tiny_parts()["allx"].toarray()
    allx[3, 1] = np.nan
    write_planetoid(d, parts=_replace("allx", sp.csr_matrix(allx)))


def _inf_tx(d):
    tx = tiny_parts()["tx"].toarray()
    tx[0, 0] = np.inf
    write_planetoid(d, parts=_replace("tx", sp.csr_matrix(tx)))


def _graph_outside(d):
    g = tiny_parts()["graph"]
    g[2].append(42)
    write_planetoid(d, parts=_replace("graph", g))


CORRUPTIONS = [
    # (id, action on a written set, file named, words in the problem)
    ("missing", lambda d: (d / "ind.toy.ty").unlink(), "ind.toy.ty", "missing file"),
    ("missing-index", lambda d: (d / "ind.toy.test.index").unlink(), "ind.toy.test.index", "missing"),
    ("truncated", _truncate, "ind.toy.allx", "truncated"),
    ("corrupt", _garbage, "ind.toy.ty", "pickle"),
    ("disallowed-class", _evil, "ind.toy.graph", "disallowed class __builtin__.print"),
    ("disallowed-os", _os_system, "ind.toy.x", "disallowed class os.system"),
    ("rows-mismatch", lambda d: write_planetoid(d, parts=_replace("ally", _onehot([0, 1, 2, 0, 1]))),
     "ind.toy.allx", "6 feature rows but ind.toy.ally has 5"),
    ("feature-cols", lambda d: write_planetoid(d, parts=_replace("tx", sp.csr_matrix(np.ones((3, 5), np.float32)))),
     "ind.toy.tx", "5 feature columns"),
    ("label-cols", lambda d: write_planetoid(d, parts=_replace("ty", np.eye(3, 4, dtype=np.int32))),
     "ind.toy.ty", "4 label columns"),
    ("not-one-hot", lambda d: write_planetoid(d, parts=_replace("ally", np.full((6, C), 2, np.int32))),
     "ind.toy.ally", "one-hot"),
    ("two-classes", lambda d: write_planetoid(d, parts=_replace("y", np.ones((2, C), np.int32))),
     "ind.toy.y", "more than one class"),
    ("nan", _nan, "ind.toy.allx", "non-finite"),
    ("inf", _inf_tx, "ind.toy.tx", "non-finite"),
    ("edge-outside", _graph_outside, "ind.toy.graph", "outside the graph"),
    ("graph-not-dict", lambda d: write_planetoid(d, parts=_replace("graph", [1, 2, 3])), "ind.toy.graph", "dict"),
    ("index-count", lambda d: write_planetoid(d, test_index=[6, 8]), "ind.toy.test.index", "2 test ids"),
    ("index-text", lambda d: (d / "ind.toy.test.index").write_text("6\nseven\n8\n"), "ind.toy.test.index", "integer"),
    ("index-overlap", lambda d: write_planetoid(d, test_index=[9, 3, 8]), "ind.toy.test.index", "overlaps"),
]


@pytest.mark.parametrize("action,fname,words", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_sets_raise_data_error_naming_file(tmp_path, action, fname, words):
    write_planetoid(tmp_path)
    action(tmp_path)
    with pytest.raises(DataError) as e:
        load_planetoid(tmp_path, "toy")
    assert e.value.path.endswith(fname), e.value
    assert words in str(e.value)


def test_restricted_unpickler_reads_scipy_and_defaultdict(tmp_path):
    obj = {"m": sp.csr_matrix(np.eye(3, dtype=np.float32)), "d": collections.defaultdict(list, {1: [2]})}
    p = tmp_path / "ok.pkl"
    with open(p, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    back = load_pickle(p)
    np.testing.assert_array_equal(back["m"].toarray(), np.eye(3))
    assert back["d"][1] == [2]


# ------------------------------------------------------------------------------- shared data


@pytest.mark.parametrize("name,nodes,edges,features,classes,train,unlabelled", [
    ("cora", 2708, 10556, 1433, 7, 140, 0),
    ("citeseer", 3327, 9104, 3703, 6, 120, 15),
])
def test_shared_planetoid_statistics(data_root, name, nodes, edges, features, classes, train, unlabelled):
    t0 = time.perf_counter()
    g = load_dataset(name, data_root, download=False)
    elapsed = time.perf_counter() - t0
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (nodes, edges, features, classes)
    assert int((g.labels == -1).sum()) == unlabelled
    assert int(g.labels.max()) == classes - 1
    s = g.split
    assert (s.train.shape[0], s.val.shape[0], s.test.shape[0]) == (train, 500, 1000)
    np.testing.assert_array_equal(s.train, np.arange(train))
    assert (g.labels[s.test] >= 0).all() and (g.labels[s.train] >= 0).all()
    assert not np.intersect1d(s.test, np.arange(train + 500)).size
    r, snd = g.receivers.astype(np.int64), g.senders.astype(np.int64)
    key = r * nodes + snd
    assert (np.diff(key) > 0).all()  # sorted, no duplicates
    assert not (r == snd).any()
    np.testing.assert_array_equal(np.sort(snd * nodes + r), key)  # symmetric
    if name == "cora":
        assert elapsed < 1.0, f"loading Cora took {elapsed:.2f}s"
