"""experiments/search_gap.py: rebuilds a finished search's supernet from its run directory and reports
where the logits ended, without training."""

import importlib.util
import os
import re

from lpgnas import data as D
from lpgnas.arch import read_architecture
from lpgnas.search import SearchConfig, search
from lpgnas.search_spaces import parse_space_yaml
from lpgnas.supernet import architecture_cost

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments", "search_gap.py")
SYNTH = "synthetic:nodes=300,edges=3000,classes=3,features=16,seed=0"
SPACE = """
schema: lpgnas.space/v1
name: gap
task: node
num_layers: [2]
layer: {attention: [gcn, gat], hidden: [4, 8]}
quant:
  weight: {bits: [4, 32], formats: [affine]}
"""


def _load():
    spec = importlib.util.spec_from_file_location("search_gap", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_search_gap_describes_the_run_and_derives_its_architecture(tmp_path):
    graph = D.load_dataset(SYNTH)
    out = str(tmp_path / "run")
    search(parse_space_yaml(SPACE), graph, config=SearchConfig(epochs=4, finetune=1, chunk=2, checkpoint_every=2, lam=1.0), out=out,
           dataset=SYNTH)
    lines = _load().describe(out)
    text = "\n".join(lines)
    rows = [line for line in lines if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 2  # one per layer position
    assert "temperature of the last search epoch" in text and "lambda 1," in text
    derived = float(re.search(r"derived \(argmax\) ([0-9.]+) KiB", text).group(1))
    arch = read_architecture(os.path.join(out, "arch.json"))  # the logits do not move in the fine-tune
    want = architecture_cost(arch, graph.num_features, graph.num_classes, graph.num_nodes, graph.num_edges)
    assert derived == round(float(want.model_size_bits) / 8192, 1)
