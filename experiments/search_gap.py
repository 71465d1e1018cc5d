"""Where a finished search ended: per decision, the argmax candidate and its probability at the final
temperature, the expected bits of every quantised component, the depth probabilities, and the
expected model size of the relaxed supernet against the size of the derived (argmax) architecture.

    python experiments/search_gap.py RUN_DIR [RUN_DIR ...]

A RUN_DIR is an ``lpgnas search --out`` directory of a node-classification search (its
``search.json`` names the space, the dataset and the settings; its ``checkpoint.npz`` holds the
logits). Nothing is trained: the supernet is rebuilt and the checkpoint loaded. Tells apart the two
ways a derived architecture can disappoint: a supernet that concentrated on a poor architecture
(argmax probabilities near 1, derived size near the expected size) and a wide gap between the
mixture and its argmax (flat probabilities).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from flax import nnx

from lpgnas import data as D
from lpgnas.search import RunDir, SearchConfig, init_state, make_program, read_log
from lpgnas.search_spaces import SearchSpace
from lpgnas.supernet import DECISIONS, Relax, Supernet, architecture_cost, derive, expected_cost


def describe(run_dir: str, data_root: str | None = None) -> list[str]:
    with open(os.path.join(run_dir, "search.json")) as fh:
        fingerprint = json.load(fh)
    settings = fingerprint["config"]
    config = SearchConfig(epochs=settings["epochs"], lam=settings["lambda"], cost=settings["cost"],
                          seed=settings["seed"])  # what the checkpoint's layout depends on
    graph = D.load_dataset(fingerprint["dataset"], data_root)
    graph = graph.with_features(D.row_normalize(graph.features))
    net = Supernet(SearchSpace.from_json(fingerprint["space"]), graph.num_features, graph.num_classes,
                   num_nodes=graph.num_nodes, rngs=nnx.Rngs(0))
    program = make_program(net, config, graph.num_nodes, graph.num_edges)
    run = RunDir(run_dir)
    state, _ = run.load_checkpoint(init_state(net, program, config.seed))
    nnx.update(net, state.logits)
    searched = [r for r in read_log(run.log_path) if r["phase"] == "search"]
    t = float(searched[-1]["temperature"])  # the last search epoch's (the fine-tune keeps the logits)
    relax = Relax(t)
    lines = [f"## {run_dir}", "", f"space `{net.space.name}`, {fingerprint['dataset']}, lambda {config.lam:g}, "
             f"cost {config.cost}, temperature of the last search epoch {t:.3g}", "",
             "| layer | decisions (argmax: probability) | components (argmax: probability, expected bits) |",
             "|---|---|---|"]
    for i, layer in enumerate(net.layers):
        decisions = [f"{name} {layer.slot.options(name)[int(np.argmax(p))]}: {float(np.max(p)):.2f}"
                     for name in DECISIONS if getattr(layer, f"alpha_{name}") is not None
                     for p in [np.asarray(layer.probs(name, relax))]]
        comps = []
        for c in layer.components:
            q = layer.quantizer(c)
            p = np.asarray(q.probs(relax))
            o = q.options[int(np.argmax(p))]
            comps.append(f"{c} {o.method}{o.bits}: {float(np.max(p)):.2f}, {float(q.expected_bits(relax)):.1f} bits")
        lines.append(f"| {i} | {'; '.join(decisions) or '-'} | {'; '.join(comps) or '-'} |")
    lines.append("")
    if net.alpha_depth is not None:
        probs = ", ".join(f"{d}: {float(p):.2f}" for d, p in zip(net.plan.depths, np.asarray(net.depth_probs(relax))))
        lines += [f"depth probabilities: {probs}", ""]
    n, e = graph.num_nodes, graph.num_edges
    expected = float(expected_cost(net, relax, n, e).model_size_bits) / 8192
    derived = float(architecture_cost(derive(net), graph.num_features, graph.num_classes, n, e).model_size_bits) / 8192
    lines += [f"model size: expected {expected:.1f} KiB, derived (argmax) {derived:.1f} KiB", ""]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    for run in args.runs:
        print("\n".join(describe(run, args.data_root)))


if __name__ == "__main__":
    main()
