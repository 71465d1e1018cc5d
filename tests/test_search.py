"""The bilevel search: each step moves only its own variables, schedules never recompile, lambda
trades accuracy for cost, an interrupted run resumes to the same result, the run directory and the
``search`` command."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lpgnas import data as D
from lpgnas.arch import read_architecture
from lpgnas.errors import ConfigError
from lpgnas.search import (
    RunDir,
    Schedule,
    SearchConfig,
    init_state,
    make_program,
    read_log,
    search,
)
from lpgnas.search_spaces import parse_space_yaml
from lpgnas.supernet import Supernet
from lpgnas.train import node_arrays

SYNTH = "synthetic:nodes=300,edges=3000,classes=3,features=16,seed=0"
# One set of compiled settings for the searches below (they share one compiled program).
FAST = dict(chunk=10, checkpoint_every=10, finetune=5)


@pytest.fixture(scope="module")
def graph():
    return D.load_dataset(SYNTH)


@pytest.fixture(scope="module")
def arrays(graph):
    return node_arrays(graph)


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def _same(a, b) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


# -- the two steps ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def program(graph):
    net = Supernet("tiny", graph.num_features, graph.num_classes, num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))
    config = SearchConfig(epochs=10, lam=0.5, **FAST)
    return net, config, make_program(net, config, graph.num_nodes, graph.num_edges)


@pytest.mark.parametrize("warmup, epoch, logits_move", [(0, 0, True), (3, 1, False), (0, 12, False)])
def test_each_step_updates_only_its_own_variables(graph, arrays, program, warmup, epoch, logits_move):
    net, config, prog = program
    x, ga = arrays
    train_m, val_m, _ = (jnp.asarray(m) for m in graph.split.masks(graph.num_nodes))
    labels = jnp.asarray(graph.labels)
    sched = Schedule.of(config)._replace(warmup=jnp.asarray(warmup, jnp.int32))
    state = init_state(net, prog, seed=0)._replace(epoch=jnp.asarray(epoch, jnp.int32))
    w_step, a_step = _jitted_steps(prog)

    after_w, loss = w_step(state, (x, ga, labels, train_m), sched, jax.random.key(1))
    assert not _same(after_w.params, state.params)
    assert _same(after_w.logits, state.logits) and _same(after_w.a_opt, state.a_opt)
    assert np.isfinite(float(loss))

    after_a, (out, val_loss, cost) = a_step(after_w, (x, ga, labels, val_m), sched, jax.random.key(2))
    assert _same(after_a.params, after_w.params) and _same(after_a.w_opt, after_w.w_opt)
    assert _same(after_a.rest, after_w.rest)  # observers are frozen in the logit step
    # logits move in the search phase after warm-up only (epoch 12 > 10 search epochs: fine-tune)
    assert (not _same(after_a.logits, after_w.logits)) == logits_move
    assert out.shape == (graph.num_nodes, graph.num_classes) and 0.0 < float(cost) <= 1.0


_STEPS: dict = {}


def _jitted_steps(prog):
    if id(prog) not in _STEPS:
        _STEPS[id(prog)] = (jax.jit(prog.weight_step), jax.jit(prog.logit_step))
    return _STEPS[id(prog)]


def test_temperature_and_lambda_changes_never_retrace(graph, arrays, program):
    net, config, prog = program
    x, ga = arrays
    _, val_m, _ = (jnp.asarray(m) for m in graph.split.masks(graph.num_nodes))
    batch = (x, ga, jnp.asarray(graph.labels), val_m)
    w_step, a_step = _jitted_steps(prog)
    state = init_state(net, prog, seed=0)
    before = a_step._cache_size()
    costs = []
    for t0, lam in [(1.0, 0.0), (5.0, 2.0), (0.05, 10.0)]:
        sched = Schedule.of(config)._replace(t_start=jnp.asarray(t0, jnp.float32), lam=jnp.asarray(lam, jnp.float32))
        _, (_, _, cost) = a_step(state, batch, sched, jax.random.key(0))
        costs.append(float(cost))
    assert a_step._cache_size() == max(before, 1)
    assert len(set(costs)) == 3  # the temperature reaches the computation


# -- what the search finds --------------------------------------------------------------------------


def test_larger_lambda_gives_cheaper_architectures(graph, arrays):
    results = {}
    for lam in (0.0, 1.0, 10.0):
        r = search("tiny", graph, config=SearchConfig(epochs=40, lam=lam, **FAST), arrays=arrays)
        results[lam] = r.summary
    costs = [results[lam]["expected_cost"] for lam in (0.0, 1.0, 10.0)]
    sizes = [results[lam]["model_size_bits"] for lam in (0.0, 1.0, 10.0)]
    assert costs[0] > costs[1] > costs[2]
    assert sizes[0] > sizes[2] and sizes[1] >= sizes[2]
    bits0 = results[0.0]["choices"]["layers"][0]["bits"]["weight"]
    bits10 = results[10.0]["choices"]["layers"][0]["bits"]["weight"]
    assert bits10 != "fp32" and (bits0 == "fp32" or int(bits0[-1]) >= int(bits10[-1]))
    # the searched model still learns at lambda 0
    assert results[0.0]["val_acc"] > 0.6
    # the compiled epoch program is reused: lambda (and the temperature) are traced inputs
    assert results[1.0]["compile_seconds"] == 0.0 and results[10.0]["compile_seconds"] == 0.0
    hot = search("tiny", graph, config=SearchConfig(epochs=40, lam=1.0, t_start=3.0, t_end=0.5, **FAST),
                 arrays=arrays)
    assert hot.summary["compile_seconds"] == 0.0 and hot.log[0]["temperature"] == 3.0


def test_degree_quant_space_masks_the_weight_step_only(graph, arrays):
    """With a ``degree_quant`` block the weight step draws Degree-Quant's protective mask: a mask
    that protects every node trains the network as if the quantiser were the identity; the logit
    step evaluates everything quantised, mask or not."""
    text = """
schema: lpgnas.space/v1
name: dqmask
task: node
num_layers: [2]
layer: {attention: [gcn], hidden: [8]}
quant:
  aggregate: {bits: [2, 32], formats: [dq]}
"""
    x, ga = arrays
    train_m, val_m, _ = (jnp.asarray(m) for m in graph.split.masks(graph.num_nodes))
    labels = jnp.asarray(graph.labels)
    config = SearchConfig(epochs=10, lam=0.5, **FAST)
    out = {}
    for name, block in (("mixed", ""), ("protected", "degree_quant: {p_min: 1.0, p_max: 1.0}\n"),
                        ("identity", "")):
        net = Supernet(parse_space_yaml(text + block), graph.num_features, graph.num_classes,
                       num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))  # the same weights in all three
        if name == "identity":  # every quantiser's choice is the full-precision candidate (dq2, fp32)
            for layer in net.layers:
                layer.quantizer("aggregate").logits[...] = jnp.asarray([-1e9, 1e9], jnp.float32)
        prog = make_program(net, config, graph.num_nodes, graph.num_edges)
        state = init_state(net, prog, seed=0)
        after, loss = jax.jit(prog.weight_step)(state, (x, ga, labels, train_m), Schedule.of(config),
                                                 jax.random.key(1))
        _, (val_out, _, _) = jax.jit(prog.logit_step)(state, (x, ga, labels, val_m), Schedule.of(config),
                                                      jax.random.key(2))
        out[name] = (float(loss), np.asarray(val_out))
    assert out["protected"][0] == pytest.approx(out["identity"][0], rel=1e-6)
    assert out["mixed"][0] != pytest.approx(out["identity"][0], rel=1e-4)
    np.testing.assert_allclose(out["protected"][1], out["mixed"][1], rtol=1e-6)  # no mask in evaluation
    assert not np.allclose(out["protected"][1], out["identity"][1])


def test_resumed_search_equals_uninterrupted_search(graph, arrays, tmp_path):
    config = SearchConfig(epochs=12, lam=0.3, **FAST)
    whole = search("tiny", graph, config=config, out=str(tmp_path / "a"), arrays=arrays, dataset="synth")

    class Stop(Exception):
        pass

    def stop_at_10(done, total):
        if done >= 10:
            raise Stop

    with pytest.raises(Stop):
        search("tiny", graph, config=config, out=str(tmp_path / "b"), arrays=arrays, dataset="synth",
               progress=stop_at_10)
    run = RunDir(tmp_path / "b")
    assert [r["epoch"] for r in read_log(run.log_path)] == list(range(10))
    resumed = search("tiny", graph, config=config, out=str(tmp_path / "b"), resume=True, arrays=arrays,
                     dataset="synth")
    assert _same(nnx.state(resumed.supernet), nnx.state(whole.supernet))
    drop = ("search_seconds", "compile_seconds", "epoch_ms", "arch_path")
    assert {k: v for k, v in resumed.summary.items() if k not in drop} == \
        {k: v for k, v in whole.summary.items() if k not in drop}
    assert read_log(run.log_path) == read_log(RunDir(tmp_path / "a").log_path)
    assert read_architecture(tmp_path / "b" / "arch.json") == read_architecture(tmp_path / "a" / "arch.json")


def test_run_directory_files(graph, arrays, tmp_path):
    out = tmp_path / "run"
    r = search("tiny", graph, config=SearchConfig(epochs=6, lam=0.1, **FAST), out=str(out), arrays=arrays,
               dataset="synth")
    assert sorted(os.listdir(out)) == ["arch.json", "checkpoint.npz", "log.jsonl", "search.json", "summary.json"]
    log = read_log(out / "log.jsonl")
    assert [rec["epoch"] for rec in log] == list(range(11))
    assert [rec["phase"] for rec in log] == ["search"] * 6 + ["finetune"] * 5
    first = log[0]
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "temperature", "expected_cost", "choices"):
        assert key in first
    assert "test_acc" not in first  # validation picks, test reports (once, in the summary)
    assert first["temperature"] == 1.0 and log[5]["temperature"] == pytest.approx(0.1)
    arch = read_architecture(out / "arch.json")
    assert arch == r.arch and arch.search["dataset"] == "synth" and arch.search["lambda"] == 0.1
    assert arch.search["metrics"]["val_acc"] == r.summary["val_acc"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arch_path"] == str(out / "arch.json")


def test_run_directory_refuses_mismatches(graph, arrays, tmp_path):
    out = str(tmp_path / "run")
    config = SearchConfig(epochs=5, lam=0.1, **FAST)
    with pytest.raises(ConfigError) as e:
        search("tiny", graph, config=config, out=out, resume=True, arrays=arrays)
    assert e.value.field == "--resume"
    search("tiny", graph, config=config, out=out, arrays=arrays)
    with pytest.raises(ConfigError) as e:
        search("tiny", graph, config=config, out=out, arrays=arrays)
    assert e.value.field == "--out" and "--resume" in e.value.problem
    with pytest.raises(ConfigError) as e:
        search("tiny", graph, config=SearchConfig(epochs=5, lam=0.2, **FAST), out=out, resume=True, arrays=arrays)
    assert e.value.field == "--out" and "lambda" in e.value.problem


@pytest.mark.parametrize("changes, field", [
    (dict(lam=-1.0), "lambda"),
    (dict(lam=float("nan")), "lambda"),
    (dict(cost="latency"), "cost"),
    (dict(epochs=0), "epochs"),
    (dict(t_end=0.0), "t_end"),
])
def test_bad_settings_name_their_field(changes, field):
    with pytest.raises(ConfigError) as e:
        SearchConfig(**changes).validate()
    assert e.value.field == field


# -- the split searched on ----------------------------------------------------------------------------


def _public_masks(graph):
    return tuple(np.asarray(m) for m in graph.split.masks(graph.num_nodes))


@pytest.mark.parametrize("split, seed, want, split_seed, train_size", [
    (None, 1, "public", None, 180),          # the synthetic graph's own split (like Planetoid's)
    ("public", 1, "public", None, 180),
    ("random", 1, "random", 1, 180),         # 60/20/20, drawn with the search seed
    ("per-class", 1, "per-class", 1, 60),    # 20 per class, 3 classes
])
def test_node_search_records_the_split_it_drew(graph, arrays, split, seed, want, split_seed, train_size):
    r = search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, seed=seed, split=split, **FAST),
               arrays=arrays, dataset="synth")
    s = r.summary
    assert (s["split"], s["split_seed"], s["split_sizes"]["train"]) == (want, split_seed, train_size)
    assert (r.arch.search["split"], r.arch.search["split_seed"]) == (want, split_seed)
    drawn = tuple(np.asarray(m) for m in D.node_split(graph, want, seed).masks(graph.num_nodes))
    assert all(np.array_equal(a, b) for a, b in zip(drawn, _public_masks(graph))) == (want == "public")
    if want != "public":  # another split, another search
        public = search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, seed=seed, **FAST), arrays=arrays)
        assert [rec["train_acc"] for rec in r.log] != [rec["train_acc"] for rec in public.log]


@pytest.mark.parametrize("split, want", [(None, "random"), ("per-class", "per-class"), ("public", "split")])
def test_a_graph_without_a_public_split_searches_a_random_one(graph, arrays, split, want):
    import dataclasses

    bare = dataclasses.replace(graph, split=None, name="bare")
    config = SearchConfig(epochs=1, finetune=1, split=split)
    if want == "split":  # refused, naming the field, before anything runs
        with pytest.raises(ConfigError, match="no public split") as e:
            search("tiny", bare, config=config, arrays=arrays)
        assert e.value.field == "split"
        return
    assert search("tiny", bare, config=config, arrays=arrays).summary["split"] == want


def test_graph_tasks_refuse_a_node_split():
    with pytest.raises(ConfigError) as e:
        search(parse_space_yaml(GRAPH_SPACE), _toy_graph_dataset(), config=SearchConfig(epochs=1, split="random"))
    assert e.value.field == "split" and "node-level" in e.value.problem


def test_resume_checks_the_split_of_the_checkpoint_and_reads_older_runs(graph, arrays, tmp_path):
    out = tmp_path / "run"
    config = SearchConfig(epochs=3, lam=0.1, split="random", **FAST)
    search("tiny", graph, config=config, out=str(out), arrays=arrays)
    assert np.load(out / "checkpoint.npz")["meta"].tobytes().decode().count('"split": "random"') == 1
    # a search.json edited to another split: the checkpoint still refuses it
    fp = json.loads((out / "search.json").read_text())
    fp["config"]["split"] = "per-class"
    (out / "search.json").write_text(json.dumps(fp))
    with pytest.raises(ConfigError, match="checkpoint.*split 'random'") as e:
        search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, split="per-class", **FAST), out=str(out),
               resume=True, arrays=arrays)
    assert e.value.field == "--resume"
    # a run written before searches recorded their split used the public one: it resumes as public only
    old = tmp_path / "old"
    first = search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, **FAST), out=str(old), arrays=arrays)
    fp = json.loads((old / "search.json").read_text())
    del fp["config"]["split"], fp["config"]["split_seed"]
    fp["config"]["supernet"]["readout"] = "mean"  # and before the read-out moved into the space
    (old / "search.json").write_text(json.dumps(fp))
    again = search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, split="public", **FAST), out=str(old),
                   resume=True, arrays=arrays)
    assert again.summary["val_acc"] == first.summary["val_acc"] and again.summary["split"] == "public"
    with pytest.raises(ConfigError, match="config.split differs"):
        search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, split="random", **FAST), out=str(old),
               resume=True, arrays=arrays)
    fp["config"]["supernet"]["readout"] = "sum"  # a read-out this search does not use
    (old / "search.json").write_text(json.dumps(fp))
    with pytest.raises(ConfigError, match="config.supernet.readout differs"):
        search("tiny", graph, config=SearchConfig(epochs=3, lam=0.1, split="public", **FAST), out=str(old),
               resume=True, arrays=arrays)


# -- graph classification ---------------------------------------------------------------------------


def _toy_graph_dataset(n_graphs=40, seed=0):
    """Rings (label 0) and stars (label 1) of 5-9 nodes, one-hot degree features."""
    rng = np.random.default_rng(seed)
    nodes, senders, receivers, n_node, n_edge, labels = [], [], [], [], [], []
    for g in range(n_graphs):
        n = int(rng.integers(5, 10))
        label = g % 2
        if label == 0:
            pairs = [(i, (i + 1) % n) for i in range(n)]
        else:
            pairs = [(0, i) for i in range(1, n)]
        edges = sorted({(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}, key=lambda e: (e[1], e[0]))
        s = np.asarray([a for a, _ in edges], np.int32)
        r = np.asarray([b for _, b in edges], np.int32)
        deg = np.bincount(r, minlength=n)
        feats = np.zeros((n, 4), np.float32)
        feats[np.arange(n), np.minimum(deg, 3)] = 1.0
        nodes.append(feats)
        senders.append(s)
        receivers.append(r)
        n_node.append(n)
        n_edge.append(len(edges))
        labels.append(label)
    return D.GraphDataset(nodes=np.concatenate(nodes), senders=np.concatenate(senders),
                          receivers=np.concatenate(receivers), n_node=np.asarray(n_node, np.int32),
                          n_edge=np.asarray(n_edge, np.int32), labels=np.asarray(labels, np.int32),
                          num_classes=2, name="rings-stars")


GRAPH_SPACE = """
schema: lpgnas.space/v1
name: graph-tiny
task: graph
num_layers: [1, 2]
layer:
  attention: [gcn, gat]
  aggregator: [add, mean]
  hidden: [8, 16]
  heads: [1, 2]
quant:
  weight: {bits: [4, 8, 32], formats: [affine, lsq]}
"""


def test_graph_classification_search_runs_and_its_architecture_trains():
    from lpgnas.train import TrainConfig, train_graph

    ds = _toy_graph_dataset()
    split = D.Split(train=np.arange(0, 24), val=np.arange(24, 32), test=np.arange(32, 40))
    r = search(parse_space_yaml(GRAPH_SPACE), ds, split=split,
               config=SearchConfig(epochs=4, finetune=2, batch_size=8, lam=0.1))
    assert r.arch.task == "graph" and len(r.log) == 6
    assert 0.0 <= r.summary["val_acc"] <= 1.0 and r.summary["model_size_bits"] > 0
    # LSQ steps are initialised from the data by the first forward pass, then learned
    steps = [np.asarray(v) for path, v in nnx.to_flat_state(nnx.state(r.supernet, nnx.Param)) if path[-1] == "step"]
    assert steps and all(np.all(s > 0) for s in steps)
    res, _ = train_graph(r.arch, ds, split,
                         config=TrainConfig(epochs=3, batch_size=8, patience=10, num_buckets=1))
    assert 0.0 <= res.test_acc <= 1.0


def test_graph_search_with_batch_norm_and_jk_derives_and_retrains_that_read_out():
    from lpgnas.train import TrainConfig, train_graph

    ds = _toy_graph_dataset()
    split = D.Split(train=np.arange(0, 24), val=np.arange(24, 32), test=np.arange(32, 40))
    space = parse_space_yaml(GRAPH_SPACE + "graph: {readout: sum, norm: batch, jk: true}\n")
    r = search(space, ds, split=split, config=SearchConfig(epochs=3, finetune=1, batch_size=8, lam=0.1))
    assert (r.arch.readout, r.arch.norm, r.arch.jk) == ("sum", "batch", True)
    stats = nnx.to_flat_state(nnx.state(r.supernet, nnx.BatchStat))
    assert stats and any(np.any(np.asarray(v) != 0) for path, v in stats if path[-1] == "mean")  # trained
    res, _ = train_graph(r.arch, ds, split, config=TrainConfig(epochs=2, batch_size=8, patience=10, num_buckets=1))
    assert 0.0 <= res.test_acc <= 1.0


def test_graph_search_buckets_and_older_runs_padded_to_one_shape(tmp_path):
    ds = _toy_graph_dataset()
    split = D.Split(train=np.arange(0, 24), val=np.arange(24, 32), test=np.arange(32, 40))
    space = parse_space_yaml(GRAPH_SPACE)
    one = SearchConfig(epochs=2, finetune=1, batch_size=8, lam=0.1, num_buckets=1, checkpoint_every=1)
    first = search(space, ds, split=split, config=one, out=str(tmp_path / "run"))
    fp = json.loads((tmp_path / "run" / "search.json").read_text())
    del fp["config"]["num_buckets"]  # as written before the setting: one shape
    (tmp_path / "run" / "search.json").write_text(json.dumps(fp))
    again = search(space, ds, split=split, config=one, out=str(tmp_path / "run"), resume=True)
    assert again.summary["val_acc"] == first.summary["val_acc"]
    with pytest.raises(ConfigError, match="num_buckets"):
        search(space, ds, split=split, config=dataclasses.replace(one, num_buckets=3), out=str(tmp_path / "run"),
               resume=True)
    with pytest.raises(ConfigError, match="num_buckets"):
        SearchConfig(num_buckets=0).validate()


def test_task_mismatch_is_refused(graph):
    with pytest.raises(ConfigError) as e:
        search(parse_space_yaml(GRAPH_SPACE), graph, config=SearchConfig(epochs=1, finetune=1))
    assert e.value.field == "space"


# -- the command line -------------------------------------------------------------------------------

_SUMMARY_KEYS = {"val_acc", "test_acc", "model_size_bits", "fp32_model_size_bits", "buffer_bits", "bitops",
                 "search_seconds", "compile_seconds", "arch_path", "expected_cost", "choices"}


def test_cli_search_json_writes_the_run_directory(tmp_path, capsys):
    from lpgnas.cli import main

    out = tmp_path / "run"
    argv = ["search", "--space", "tiny", "--dataset", SYNTH, "--epochs", "5", "--finetune", "5", "--lambda", "0.2",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert _SUMMARY_KEYS <= set(summary)
    assert summary["arch_path"] == str(out / "arch.json") and summary["lambda"] == 0.2
    assert read_architecture(out / "arch.json").search["lambda"] == 0.2
    assert len(read_log(out / "log.jsonl")) == 10
    # a finished run resumes to the same summary without training again
    assert main(argv + ["--resume"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["val_acc"] == summary["val_acc"] and again["model_size_bits"] == summary["model_size_bits"]


@pytest.mark.parametrize("extra, flag", [
    (["--lambda", "-1"], "--lambda"),
    (["--lambda", "nan"], "--lambda"),
    (["--space", "no-such-space"], "--space"),
    (["--temperature", "1.0:zero"], "--temperature"),
    (["--temperature", "0:0.1"], "--temperature"),
    (["--epochs", "0"], "--epochs"),
    (["--resume"], "--resume"),
])
def test_cli_search_bad_flags_exit_2(tmp_path, capsys, extra, flag):
    from lpgnas.cli import main

    argv = ["search", "--space", "tiny", "--dataset", SYNTH, "--epochs", "2", "--out", str(tmp_path / "r")] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


def test_cli_search_split_is_recorded_and_resume_refuses_another(tmp_path, capsys):
    from lpgnas.cli import main

    out = tmp_path / "run"
    argv = ["search", "--space", "tiny", "--dataset", SYNTH, "--epochs", "3", "--finetune", "2", "--seed", "1",
            "--out", str(out), "--json"]
    assert main(argv + ["--split", "random"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["split"], summary["split_seed"]) == ("random", 1)
    assert json.loads((out / "search.json").read_text())["config"]["split"] == "random"
    assert json.loads((out / "summary.json").read_text())["split"] == "random"
    assert {k: read_architecture(out / "arch.json").search[k] for k in ("split", "split_seed")} == \
        {"split": "random", "split_seed": 1}
    for other in (["--split", "per-class"], []):  # no --split: the dataset's default (public here)
        assert main(argv + other + ["--resume"]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and "config.split differs" in err and '"random" there' in err
    assert main(argv + ["--split", "random", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["val_acc"] == summary["val_acc"]


@pytest.mark.parametrize("split", ["bogus", "Random", ""])
def test_cli_search_bad_split_is_an_argparse_error(tmp_path, capsys, split):
    from lpgnas.cli import main

    with pytest.raises(SystemExit) as e:
        main(["search", "--dataset", SYNTH, "--out", str(tmp_path / "r"), "--split", split])
    assert e.value.code == 2 and "--split" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_search_refuses_a_different_search_in_out(tmp_path, capsys):
    from lpgnas.cli import main

    out = tmp_path / "r"
    out.mkdir()
    (out / "search.json").write_text(json.dumps({"schema": "lpgnas.search/v1", "dataset": "cora"}))
    argv = ["search", "--space", "tiny", "--dataset", SYNTH, "--epochs", "2", "--out", str(out)]
    assert main(argv) == 2
    assert "--out" in capsys.readouterr().err
