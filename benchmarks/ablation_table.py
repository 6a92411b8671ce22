"""benchmarks/ablation.md from the rows of benchmarks/ablation.tsv (written by ablation.sh).

python benchmarks/ablation_table.py
"""

import csv
import statistics
from pathlib import Path

HERE = Path(__file__).parent
COLUMNS = "tag split epochs flags seconds ppl model top1 top5 savings top3".split()
SPLITS = {
    "ptb": "PTB (train ptb.valid, eval ptb.test)",
    "wt2": "WikiText-2 (train test, eval valid)",
}


def main() -> None:
    with open(HERE / "ablation.tsv", newline="") as f:
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in csv.reader(f, delimiter="\t")]
    lines = [
        "# The regularisers, the schedule and the softmax, alone and together",
        "",
        'Each row: `bash benchmarks/ablation.sh CORE TAG SPLIT EPOCHS "FLAGS"` — the default '
        "recipe with FLAGS, a fixed number of epochs (those the split's budget holds on a quiet "
        "machine), one BLAS thread on one core, two rows side by side; then `wordlstm eval`. "
        "Perplexity with the word cache (`eval`'s default) and of the model alone. Seeds: "
        "1111 unless the flags say otherwise.",
        "",
    ]
    for split, title in SPLITS.items():
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        lines += [
            f"## {title}",
            "",
            "| flags | epochs | train s | perplexity | model alone | top-1 | top-5 | keystroke "
            "savings | top-3 of words |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            flags = f"`{r['flags']}`" if r["flags"] else "(defaults)"
            lines.append(
                f"| {flags} | {r['epochs']} | {r['seconds']} | {r['ppl']} | {r['model']} | "
                f"{r['top1']}% | {r['top5']}% | {r['savings']}% | {r['top3']}% |"
            )
        seeds = [r for r in mine if r["flags"] in ("", "--seed 2", "--seed 3")]
        if len(seeds) == 3:
            median = {k: statistics.median(float(r[k]) for r in seeds) for k in COLUMNS[5:]}
            lines.append(
                "| **defaults, median of seeds 1111, 2, 3** | | | **{ppl:.2f}** | {model:.2f} | "
                "{top1:.1f}% | {top5:.1f}% | {savings:.1f}% | {top3:.1f}% |".format(**median)
            )
        lines.append("")
    (HERE / "ablation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
