"""The supernet: separate variable types, relaxation, weight sharing that reproduces the derived
model exactly, expected costs equal to the exact costs at one-hot choices, derivation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lpgnas import data as D
from lpgnas.arch import Architecture
from lpgnas.errors import ConfigError
from lpgnas.nn import GNN
from lpgnas.search_spaces import load_space, parse_space_yaml
from lpgnas.supernet import (
    ArchLogit,
    MixedQuantizer,
    Relax,
    Supernet,
    architecture_cost,
    choice_probs,
    derive,
    expected_cost,
    reference_cost,
    temperature_at,
)
from lpgnas.train import TrainConfig, node_arrays, train_node

SYNTH = "synthetic:nodes=300,edges=3000,classes=3,features=16,seed=0"

# Every attention type and aggregator, two depths, skips, and stateless (fixed-point) quantisers
# whose outputs do not depend on the tensor's other entries: the discretised supernet must then
# compute exactly what lpgnas.nn.GNN computes for the derived architecture.
WIDE = """
schema: lpgnas.space/v1
name: wide
task: node
num_layers: [2, 3]
layer:
  attention: [const, gcn, gat, sym-gat, cos, linear, gene-linear]
  aggregator: [add, mean, max]
  activation: [none, relu, elu, tanh]
  hidden: [4, 8]
  heads: [1, 2, 3]
  skip: [false, true]
quant:
  weight: {bits: [4, 8, 32], formats: [fixed]}
  input: {bits: [8, 32], formats: [fixed]}
  attention: {bits: [8, 32], formats: [fixed]}
  aggregate: {bits: [8, 32], formats: [fixed]}
"""


@pytest.fixture(scope="module")
def graph():
    return D.load_dataset(SYNTH)


@pytest.fixture(scope="module")
def arrays(graph):
    return node_arrays(graph)


def _net(space, graph, seed=0):
    return Supernet(space, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes,
                    rngs=nnx.Rngs(params=seed))


def _decisions(net):
    """(holder, attribute, options) of every decision with more than one candidate."""
    out = []
    if net.alpha_depth is not None:
        out.append((net, "alpha_depth", net.plan.depths))
    for layer in net.layers:
        for name in ("attention", "aggregator", "activation", "hidden", "heads", "skip"):
            if getattr(layer, f"alpha_{name}") is not None:
                out.append((layer, f"alpha_{name}", layer.slot.options(name)))
        for comp in layer.components:
            out.append((layer.quantizer(comp), "logits", layer.quantizer(comp).options))
    return out


def _force(net, rng):
    """Set every decision's logits so that a random candidate is the argmax."""
    for holder, attr, opts in _decisions(net):
        k = int(rng.integers(len(opts)))
        getattr(holder, attr)[...] = jnp.asarray(np.where(np.arange(len(opts)) == k, 5.0, 0.0), jnp.float32)


# -- variable types ---------------------------------------------------------------------------------


def test_logits_and_weights_are_separate_variable_types(graph):
    net = _net("tiny", graph)
    params = nnx.state(net, nnx.Param)
    logits = nnx.state(net, ArchLogit)
    n_logit_leaves = len(jax.tree_util.tree_leaves(logits))
    assert n_logit_leaves == len(_decisions(net)) > 0
    p_paths = {p for p, _ in nnx.to_flat_state(params)}
    a_paths = {p for p, _ in nnx.to_flat_state(logits)}
    assert p_paths and not (p_paths & a_paths)
    assert all(p[-1] in ("logits", "alpha_depth") or p[-1].startswith("alpha_") for p in a_paths)
    # the kernels, biases and attention vectors are weights
    assert ("layers", 0, "kernel") in p_paths and ("layers", 0, "att_src") in p_paths
    # two optimisers, one per variable type
    import optax

    w_opt = nnx.Optimizer(net, optax.adam(1e-2), wrt=nnx.Param)
    a_opt = nnx.Optimizer(net, optax.adam(1e-2), wrt=ArchLogit)
    assert len(jax.tree_util.tree_leaves(nnx.state(w_opt, nnx.OptState))) != \
        len(jax.tree_util.tree_leaves(nnx.state(a_opt, nnx.OptState)))


# -- relaxation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("relax, check", [
    (Relax(1.0), "soft"),
    (Relax(0.1), "sharper"),
    (Relax(1.0, jax.random.key(0), gumbel=True), "noisy"),
    (Relax(1.0, jax.random.key(0), gumbel=True, hard=True), "one_hot"),
    (Relax(1.0, discrete=1.0), "argmax"),
    (Relax(1.0, discrete=0.0), "soft"),
])
def test_choice_probabilities(relax, check):
    logits = jnp.asarray([0.3, -0.2, 0.1, 0.0], jnp.float32)
    p = choice_probs(logits, relax, salt=3)
    assert p.shape == (4,) and float(jnp.sum(p)) == pytest.approx(1.0, abs=1e-6)
    soft = jax.nn.softmax(logits)
    if check == "soft":
        np.testing.assert_allclose(p, soft, rtol=1e-6)
    elif check == "sharper":
        assert float(jnp.max(p)) > float(jnp.max(soft)) + 0.3
    elif check == "noisy":
        assert not np.allclose(p, soft, atol=1e-3)
    elif check in ("one_hot", "argmax"):
        assert sorted(np.asarray(p).tolist()) == [0.0, 0.0, 0.0, 1.0]
        if check == "argmax":
            assert int(jnp.argmax(p)) == 0
    # the straight-through estimator keeps a gradient; the argmax does not
    g = jax.grad(lambda z: choice_probs(z, relax, 3)[1])(logits)
    assert (float(jnp.abs(g).sum()) > 0) == (check != "argmax")


def test_temperature_schedule_is_exponential():
    ts = [float(temperature_at(e, 1.0, 0.1, 11)) for e in range(13)]
    assert ts[0] == pytest.approx(1.0) and ts[10] == pytest.approx(0.1, rel=1e-5) and ts[12] == ts[10]
    assert ts[5] == pytest.approx(0.1 ** 0.5, rel=1e-5)
    assert all(a > b for a, b in zip(ts[:10], ts[1:11]))


def test_mixed_quantizer_is_the_weighted_sum_of_its_candidates():
    from lpgnas import quant as Q

    opts = load_space("lpgnas").quant_for("weight").options()  # every format, 1..32 bits
    mq = MixedQuantizer("weight", opts, shape=(6, 5), salt=1, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (6, 5))
    ctx = Q.QuantContext()
    gdef, logits, rest = nnx.split(mq, ArchLogit, ...)
    fp32 = [i for i, o in enumerate(opts) if o.method == "fp32"][0]

    @jax.jit
    def run(z):
        m = nnx.merge(gdef, {"logits": z}, rest)
        p = m.probs(Relax(1.0))
        want = sum(p[i] * q(x, ctx) for i, q in enumerate(m.quantizers))
        hard = m(x, ctx, Relax(1.0, discrete=1.0))
        return m(x, ctx, Relax(1.0)), want, hard, m.expected_bits(Relax(1.0, discrete=1.0)), jax.grad(
            lambda zz: jnp.sum(nnx.merge(gdef, {"logits": zz}, rest)(x, ctx, Relax(1.0)) ** 2))(z)

    got, want, _, _, grad = run(jnp.linspace(-1.0, 1.0, len(opts)).astype(jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.count_nonzero(np.asarray(grad)) == len(opts)  # every candidate's output reaches its logit
    _, _, hard, bits, _ = run(jnp.where(jnp.arange(len(opts)) == fp32, 10.0, 0.0).astype(jnp.float32))
    np.testing.assert_allclose(hard, x)
    assert float(bits) == 32.0
    assert {o.method for o in opts} == {"binary", "ternary", "fixed", "affine", "lsq", "fp32"}


@pytest.mark.parametrize("component, shape", [("aggregate", (40, 6)), ("attention", (40, 3)), ("weight", (8, 5))])
def test_mixed_quantizer_keeps_degree_quant_protected_rows_in_training_only(component, shape):
    """Every candidate of the graph-aware formats (affine, Degree-Quant percentile, learned range)
    lets a protected row through in training and keeps it out of its statistics, exactly as the
    library's quantisers do; evaluation (and weights) quantise every row."""
    from lpgnas import quant as Q
    from lpgnas.search_spaces import QuantChoices

    opts = QuantChoices(component, (2, 4), ("affine", "dq", "alpha")).options()
    x = 3.0 * jax.random.normal(jax.random.key(4), shape)
    protect = jnp.arange(shape[0]) % 3 == 0
    logits = jnp.linspace(-1.0, 1.0, len(opts)).astype(jnp.float32)

    def fresh():
        m = MixedQuantizer(component, opts, shape=shape, salt=2, rngs=nnx.Rngs(0))
        m.logits[...] = logits
        return m

    for training in (True, False):
        ctx = Q.QuantContext(training=training, protect=protect)
        got = fresh()(x, ctx, Relax(1.0))
        ref = fresh()
        p = ref.probs(Relax(1.0))
        want = sum(p[i] * q(x, ctx) for i, q in enumerate(ref.quantizers))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        rows = np.asarray(protect)
        through = np.all(np.asarray(got)[rows] == np.asarray(x)[rows])
        assert through == (training and component != "weight")
    assert {o.method for o in opts} >= {"dq", "alpha"} or component == "weight"


def test_a_degree_quant_space_derives_its_masking_into_the_quant_config(graph):
    from lpgnas import quant as Q

    space = parse_space_yaml(WIDE + "degree_quant: {p_min: 0.1, p_max: 0.2}\n")
    net = _net(space, graph, 0)
    _force(net, np.random.default_rng(0))
    arch = derive(net)
    assert arch.quant is not None and arch.quant.dq == Q.DQSettings(0.1, 0.2)
    assert Architecture.from_json(arch.to_json()) == arch
    assert derive(_net(parse_space_yaml(WIDE), graph, 0)).quant.dq is None


# -- weight sharing: the discretised supernet is the derived model ----------------------------------


_JITTED: dict = {}


def _jit_forward(module, *args, **kwargs):
    """``module(*args, **kwargs)`` through one jitted function per module structure (the supernets
    of one space share it: the forced choices are logit values, not structure)."""
    gdef, state = nnx.split(module)
    key = (gdef, tuple(sorted(kwargs.items())))
    fn = _JITTED.get(key)
    if fn is None:
        fn = jax.jit(lambda st, *a: nnx.merge(gdef, st)(*a, **kwargs))
        _JITTED[key] = fn
    return fn(nnx.as_pure(state), *args)


@pytest.mark.parametrize("seed", range(4))
def test_discretised_supernet_equals_the_derived_gnn(graph, arrays, seed):
    space = parse_space_yaml(WIDE)
    net = _net(space, graph, seed)
    _force(net, np.random.default_rng(seed))
    arch = derive(net)
    x, ga = arrays
    got = _jit_forward(net, x, ga, relax=Relax(1.0, discrete=1.0))
    model = GNN(arch, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))
    _copy_shared_weights(net, model, arch)
    want = _jit_forward(model, x, ga)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-4, atol=2e-4)


def _copy_shared_weights(net, model, arch):
    positions = net.plan.derived_positions(len(arch.layers))
    rows = np.arange(net.in_dim)
    for j, pos in enumerate(positions):
        src, dst, spec = net.layers[pos], model.layers[j], arch.layers[j]
        f_max = src.f_max
        cols = np.concatenate([h * f_max + np.arange(spec.hidden) for h in range(spec.heads)])
        dst.kernel[...] = src.kernel[...][rows][:, cols]
        if spec.concat:
            dst.bias[...] = src.bias[...][cols]
        else:
            dst.bias[...] = src.bias[...][: spec.hidden]
        if hasattr(dst, "att_src"):
            dst.att_src[...] = src.att_src[...][: spec.heads, : spec.hidden]
            dst.att_dst[...] = src.att_dst[...][: spec.heads, : spec.hidden]
        if hasattr(dst, "att_gen"):
            dst.att_gen[...] = src.att_gen[...][: spec.heads, : spec.hidden]
        if spec.skip:
            assert dst.skip_kernel is not None  # widths differ in this space: a projection
            skip = src.skip_kernel[...][rows]
            dst.skip_kernel[...] = skip[:, cols] if spec.concat else skip[:, : spec.hidden]
        rows = cols


# -- costs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_expected_cost_at_one_hot_choices_is_the_derived_architectures_cost(graph, seed):
    space = parse_space_yaml(WIDE)
    net = _net(space, graph, seed)
    _force(net, np.random.default_rng(100 + seed))
    arch = derive(net)
    exp = expected_cost(net, Relax(1.0, discrete=1.0), graph.num_nodes, graph.num_edges)
    exact = architecture_cost(arch, graph.num_features, graph.num_classes, graph.num_nodes, graph.num_edges)
    layers = arch.layers
    # the supernet counts a skip projection even where the derived layer's skip is an identity
    assert all(not s.skip for s in layers) or all(
        (graph.num_features if i == 0 else layers[i - 1].out_dim()) != s.out_dim() for i, s in enumerate(layers))
    assert float(exp.model_size_bits) == pytest.approx(exact.model_size_bits, rel=1e-5)
    assert float(exp.buffer_bits) == pytest.approx(exact.feature_bits, rel=1e-5)
    assert float(exp.bitops) == pytest.approx(exact.bitops, rel=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_built_models_cost_is_the_derived_architectures_cost(graph, seed):
    """``lpgnas train`` counts the built GNN (:func:`lpgnas.cost.gnn_cost`), the search and the tune
    count the architecture: one derived model gets one size, whatever its attention type."""
    from lpgnas.cost import gnn_cost

    net = _net(parse_space_yaml(WIDE), graph, seed)
    _force(net, np.random.default_rng(200 + seed))
    arch = derive(net)
    exact = architecture_cost(arch, graph.num_features, graph.num_classes, graph.num_nodes, graph.num_edges)
    model = GNN(arch, graph.num_features, graph.num_classes, num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))
    built = gnn_cost(model, graph.num_nodes, graph.num_edges)
    for field in ("model_size_bits", "fp32_model_size_bits", "feature_bits", "bitops"):
        assert float(getattr(built, field)) == pytest.approx(float(getattr(exact, field)), rel=1e-6), field


def test_reference_cost_is_the_largest_full_precision_model(graph):
    net = _net("tiny", graph)
    ref = reference_cost(net, graph.num_nodes, graph.num_edges)
    for holder, attr, opts in _decisions(net):
        last = [i for i, o in enumerate(opts) if getattr(o, "method", None) == "fp32" or o is opts[-1]][-1]
        getattr(holder, attr)[...] = jnp.where(jnp.arange(len(opts)) == last, 5.0, 0.0).astype(jnp.float32)
    exp = expected_cost(net, Relax(1.0, discrete=1.0), graph.num_nodes, graph.num_edges)
    for field in ("model_size_bits", "buffer_bits", "bitops"):
        assert float(getattr(exp, field)) == pytest.approx(getattr(ref, field), rel=1e-5)


@pytest.mark.parametrize("target", ["size", "buffer", "bitops"])
def test_expected_cost_is_differentiable_and_falls_with_fewer_bits(graph, target):
    net = _net("tiny", graph)
    _, params, logits, rest = nnx.split(net, nnx.Param, ArchLogit, ...)
    gdef = nnx.graphdef(net)

    def cost(lg):
        m = nnx.merge(gdef, params, lg, rest)
        return expected_cost(m, Relax(1.0), graph.num_nodes, graph.num_edges).target(target)

    g = jax.jit(jax.grad(cost))(nnx.as_pure(logits))
    flat = dict(nnx.to_flat_state(g))
    comp = "input" if target == "buffer" else "weight"  # model size does not depend on activations
    w0 = np.asarray(flat[("layers", 0, f"q_{comp}", "logits")])
    bits = [o.bits for o in net.layers[0].quantizer(comp).options]
    # raising the logit of a wider candidate raises the cost
    assert np.all(np.diff(w0[np.argsort(bits)]) > 0)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in flat.values())


# -- derivation -------------------------------------------------------------------------------------


def test_derived_architecture_round_trips_and_trains(graph, arrays):
    net = _net("tiny", graph)
    _force(net, np.random.default_rng(7))
    arch = derive(net, search={"space": "tiny", "lambda": 0.1, "seed": 0, "metrics": {}})
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.quant is not None and again.search["space"] == "tiny"
    bits = {(o.layer, o.component): o.spec.bits for o in arch.quant.overrides}
    choices = net.choices()
    for (layer, comp), b in bits.items():
        assert choices["layers"][layer]["bits"][comp].endswith(str(b))
    result, _ = train_node(arch, graph, config=TrainConfig(epochs=15, chunk=15, patience=100), arrays=arrays)
    assert 0.0 <= result.test_acc <= 1.0 and result.epochs == 15
    assert result.val_acc > 0.4  # chance is 1/3


@pytest.mark.parametrize("choice, op", [
    (dict(attention="gat", aggregator="add", heads=2), "gat"),
    (dict(attention="gcn", aggregator="add", heads=1), "gcn"),
    (dict(attention="gcn", aggregator="mean", heads=1), "attn"),
    (dict(attention="gcn", aggregator="add", heads=2), "attn"),
    (dict(attention="cos", aggregator="add", heads=1), "attn"),
])
def test_derived_op_names_baseline_layers_only_when_exact(choice, op):
    from lpgnas.supernet._derive import _op

    assert _op(choice, None) == op


@pytest.mark.parametrize("space, field", [
    ("sgquant", "degree_buckets"),
    ("schema: lpgnas.space/v1\ntask: node\nnum_layers: [2]\nlayer: {op: [gin]}\n", "layer.op"),
    ("schema: lpgnas.space/v1\ntask: node\nnum_layers: [1, 2]\nlayer: {op: [attn]}\n", "num_layers"),
])
def test_unsupported_spaces_are_refused_by_field(graph, space, field):
    s = load_space(space) if "\n" not in space else parse_space_yaml(space)
    with pytest.raises(ConfigError) as e:
        _net(s, graph)
    assert e.value.field == field


def test_compact_space_derives_per_column_weights(graph):
    net = _net("compact", graph)
    _force(net, np.random.default_rng(3))
    arch = derive(net)
    for i in range(len(arch.layers)):
        w = arch.quant.spec(i, "weight")
        assert w.granularity == "column" and w.bits in (1, 2, 4, 8)
        x = arch.quant.spec(i, "input")
        assert x.bits in (4, 8) and x.granularity == "row" and not x.signed


def test_per_node_input_scales_see_the_rows_of_a_sparse_input(graph):
    """Row-compact / BCOO features and the same features dense give the same supernet output when
    the input candidates have one scale per node (the sparse input is densified for them)."""
    net = _net("compact", graph)
    rng = np.random.default_rng(5)
    shape = (graph.num_nodes, graph.num_features)
    varied = graph.with_features((rng.random(shape) * (rng.random(shape) < 0.3)).astype(np.float32))
    x_sparse, ga = node_arrays(varied, sparse_features=True)
    x_dense, _ = node_arrays(varied, sparse_features=False)
    relax = Relax(1.0, discrete=1.0)
    got = _jit_forward(net, x_sparse, ga, relax=relax)
    want = _jit_forward(net, jnp.asarray(x_dense), ga, relax=relax)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_fixed_gcn_space_searches_only_bits(graph):
    s = parse_space_yaml("schema: lpgnas.space/v1\ntask: node\nnum_layers: [2]\nfixed: {model: gcn, hidden: 8}\n"
                         "quant:\n  weight: {bits: [2, 8], formats: [affine]}\n")
    net = _net(s, graph)
    decisions = _decisions(net)
    assert len(decisions) == 2 and all(attr == "logits" for _, attr, _ in decisions)
    arch = derive(net)
    assert [(l.op, l.hidden) for l in arch.layers] == [("gcn", 8), ("gcn", graph.num_classes)]


@pytest.mark.parametrize("space", ["tiny", "compact"])
def test_supernet_forward_is_finite_with_gumbel_and_training(graph, arrays, space):
    net = _net(space, graph)
    x, ga = arrays
    gdef, state = nnx.split(net)

    @jax.jit
    def run(st, key):
        relax = Relax(0.5, jax.random.fold_in(key, 1), gumbel=True, hard=True)
        return nnx.merge(gdef, st)(x, ga, relax, training=True, key=key)

    out = run(nnx.as_pure(state), jax.random.key(1))
    assert out.shape == (graph.num_nodes, graph.num_classes) and bool(jnp.all(jnp.isfinite(out)))


# -- exact rewrites of the supernet's hot paths ----------------------------------------------------

@pytest.mark.parametrize("heads, width, seed", [(1, 4, 0), (3, 5, 1), (8, 16, 2)])
def test_gene_linear_logits_equal_the_layer_library(arrays, heads, width, seed):
    from lpgnas.nn import attention_logits
    from lpgnas.supernet._layer import _gene_linear_logits

    _, ga = arrays
    ks = jax.random.split(jax.random.key(seed), 4)
    hh = jax.random.normal(ks[0], (ga.num_nodes, heads, width), jnp.float32)
    src, dst, gen = (jax.random.normal(k, (heads, width), jnp.float32) for k in ks[1:])
    ct = jax.random.normal(jax.random.key(seed + 10), (ga.loop_senders.shape[0], heads), jnp.float32)

    def f(fn):
        return jax.value_and_grad(lambda *a: jnp.sum(fn(*a, ga.loop_senders, ga.loop_receivers) * ct),
                                  argnums=(0, 1, 2, 3))

    v0, g0 = f(lambda h, s, d, g, snd, rcv: attention_logits("gene-linear", h, s, d, g, snd, rcv))(hh, src, dst, gen)
    v1, g1 = f(_gene_linear_logits)(hh, src, dst, gen)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-4)


# -- graph read-out (pooling, batch norm, jumping knowledge) ----------------------------------------

GRAPH_WIDE = """
schema: lpgnas.space/v1
name: graph-wide
task: graph
num_layers: [2, 3]
layer:
  attention: [const, gcn, gat, cos, gene-linear]
  aggregator: [add, mean, max]
  activation: [none, relu, tanh]
  hidden: [4, 8]
  heads: [1, 2]
quant:
  weight: {bits: [4, 8, 32], formats: [fixed]}
  aggregate: {bits: [8, 32], formats: [fixed]}
"""  # skip connections: covered by WIDE


@pytest.fixture(scope="module")
def graph_batch(data_root):
    from lpgnas.data import iterate_batches, make_buckets
    from lpgnas.train import batch_arrays

    ds = D.load_dataset("mutag", data_root)
    ids = np.arange(24)
    buckets = make_buckets(ds, 24, num_buckets=1)
    batch = next(iterate_batches(ds, ids, 24, buckets=buckets, shuffle=False, seed=0))
    return ds, batch_arrays(batch)


def _graph_space(readout, norm, jk):
    return parse_space_yaml(GRAPH_WIDE + f"graph: {{readout: {readout}, norm: {norm}, jk: {str(jk).lower()}}}\n")


def _randomise_batch_norms(net, rng):
    for layer in net.layers:
        bn = layer.bn
        w = bn.scale[...].shape[0]
        bn.scale[...] = jnp.asarray(rng.uniform(0.5, 2.0, w), jnp.float32)
        bn.bias[...] = jnp.asarray(rng.normal(0, 0.5, w), jnp.float32)
        bn.mean[...] = jnp.asarray(rng.normal(0, 0.5, w), jnp.float32)
        bn.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, w), jnp.float32)


@pytest.mark.parametrize("readout, norm, jk, seed", [
    ("mean", "batch", True, 0), ("sum", "batch", False, 1), ("max", "none", True, 2), ("mean", "none", False, 3),
    ("sum", "batch", True, 4),
])
def test_graph_supernet_discretised_equals_the_derived_gnn(graph_batch, readout, norm, jk, seed):
    """Pooling, batch norm (evaluation mode: running statistics) and jumping-knowledge scorers of
    the argmax sub-network compute what lpgnas.nn.GNN computes for the derived architecture."""
    ds, (x, ga, _, _) = graph_batch
    net = Supernet(_graph_space(readout, norm, jk), ds.num_features, ds.num_classes, rngs=nnx.Rngs(params=seed))
    rng = np.random.default_rng(seed)
    _force(net, rng)
    if norm == "batch":
        _randomise_batch_norms(net, rng)
    arch = derive(net)
    assert (arch.task, arch.readout, arch.norm, arch.jk) == ("graph", readout, norm, jk)
    got = _jit_forward(net, x, ga, relax=Relax(1.0, discrete=1.0))
    model = GNN(arch, ds.num_features, ds.num_classes, rngs=nnx.Rngs(0))
    _copy_shared_weights(net, model, arch)
    positions = net.plan.derived_positions(len(arch.layers))
    cols = [np.concatenate([h * net.layers[p].f_max + np.arange(s.hidden) for h in range(s.heads)])
            for p, s in zip(positions, arch.layers)]
    if norm == "batch":
        for j, p in enumerate(positions):
            for name in ("scale", "bias", "mean", "var"):
                getattr(model.norms[j], name)[...] = getattr(net.layers[p].bn, name)[...][cols[j]]
    pairs = ([(0, 0, np.arange(ds.num_features))] + [(j + 1, p + 1, cols[j]) for j, p in enumerate(positions)]
             if jk else [(0, 0, cols[-1])])
    for dst, src, rows in pairs:
        model.scorers[dst].kernel[...] = net.scorers[src].kernel[...][rows]
        model.scorers[dst].bias[...] = net.scorers[src].bias[...]
    want = _jit_forward(model, x, ga)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("readout, norm, jk", [("mean", "batch", True), ("sum", "none", True), ("max", "batch", False)])
def test_graph_expected_cost_at_one_hot_choices_is_the_built_models_cost(graph_batch, readout, norm, jk):
    """Scorers (one per pooled representation with jk) and the batch norms' scale and shift are
    counted alike by the search, the architecture and the built model."""
    from lpgnas.cost import gnn_cost

    ds, _ = graph_batch
    net = Supernet(_graph_space(readout, norm, jk), ds.num_features, ds.num_classes, rngs=nnx.Rngs(params=5))
    _force(net, np.random.default_rng(5))
    arch = derive(net)
    n, e = 18.0, 40.0
    exp = expected_cost(net, Relax(1.0, discrete=1.0), n, e)
    exact = architecture_cost(arch, ds.num_features, ds.num_classes, n, e)
    built = gnn_cost(GNN(arch, ds.num_features, ds.num_classes, rngs=nnx.Rngs(0)), n, e)
    assert float(exp.model_size_bits) == pytest.approx(exact.model_size_bits, rel=1e-5)
    assert float(built.model_size_bits) == pytest.approx(exact.model_size_bits, rel=1e-6)
    bn = sum(2 * s.out_dim() for s in arch.layers) if norm == "batch" else 0
    plain = architecture_cost(dataclasses.replace(arch, norm="none"), ds.num_features, ds.num_classes, n, e)
    assert exact.model_size_bits - plain.model_size_bits == pytest.approx(32 * bn)


def test_graph_batch_norm_ignores_padding_nodes(graph_batch):
    """Training-mode statistics come from real nodes only: padding rows do not move the output."""
    ds, (x, ga, _, _) = graph_batch
    net = Supernet(_graph_space("mean", "batch", True), ds.num_features, ds.num_classes, rngs=nnx.Rngs(params=0))
    pad = ~np.asarray(ga.node_mask)
    assert pad.any()
    noisy = jnp.where(jnp.asarray(pad)[:, None], 1e3, x)
    a = net(x, ga, Relax(1.0), training=True)
    b = net(noisy, ga, Relax(1.0), training=True)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
