"""Packed low-bit inference benchmark: bytes, latency and agreement of ``lpgnas infer`` per preset.

    python experiments/bench_infer.py [--dataset cora] [--model gcn] [--presets w8a8,w4a8,int8,dq-int8]
                                      [--models-dir /tmp/lpgnas-infer-models] [--repeats 50]
                                      [--out experiments/results/bench_infer.md]

For each preset: train one seed with ``lpgnas train --save`` (skipped when the model folder exists),
then run ``lpgnas infer --json`` with ``--messages exact`` and ``--messages fused``. Latencies are
medians over ``repeats`` runs with the compile excluded, on this machine's default backend (the pure-JAX
reference on CPU); ``fp32`` is the same architecture without quantisation as one XLA program, ``QAT``
the fake-quantised model's evaluation. Prints the table and writes it as markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _runner import run_json  # noqa: E402

COLUMNS = ("preset", "messages", "test_acc", "qat_test_acc", "agreement", "packed_feature_bytes",
           "fp32_feature_bytes", "packed_weight_bytes", "fp32_weight_bytes", "latency_ms", "qat_latency_ms",
           "fp32_latency_ms", "compile_seconds", "backend")


def bench(dataset: str, model: str, presets: list[str], models_dir: str, repeats: int,
          data_root: str | None) -> list[dict]:
    root = f" --data-root {data_root}" if data_root else ""
    rows = []
    for preset in presets:
        folder = os.path.join(models_dir, f"{dataset}-{model}-{preset}")
        if not os.path.exists(os.path.join(folder, "meta.json")):
            run_json(f"train --dataset {dataset}{root} --model {model} --quant {preset} --seeds 1 "
                     f"--save {folder} --json")
        for messages in ("exact", "fused"):
            out = run_json(f"infer --model {folder} --dataset {dataset}{root} --messages {messages} "
                           f"--repeats {repeats} --json")
            rows.append({"preset": preset, **out})
    return rows


def render(rows: list[dict], argv: list[str]) -> str:
    lines = [f"# Packed inference ({platform.machine()}, {os.cpu_count()} CPUs)", "",
             f"`python experiments/bench_infer.py {' '.join(argv)}`", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--model", default="gcn")
    p.add_argument("--presets", default="w8a8,w4a8,int8,dq-int8")
    p.add_argument("--models-dir", default="/tmp/lpgnas-infer-models")
    p.add_argument("--data-root", default=None)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_infer.md"))
    args = p.parse_args(argv)
    rows = bench(args.dataset, args.model, args.presets.split(","), args.models_dir, args.repeats, args.data_root)
    text = render(rows, argv)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
