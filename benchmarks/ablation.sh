#!/bin/bash
# One row of benchmarks/ablation.md: the default recipe with FLAGS on a benchmark split,
# trained for a fixed number of epochs on one core with one BLAS thread (two rows run side
# by side, one per core), then `wordlstm eval` on the split's evaluation text.
#
#   bash benchmarks/ablation.sh CORE TAG SPLIT EPOCHS "FLAGS"    (SPLIT: ptb, wt2 or shk)
#
# EPOCHS are those that the split's time budget holds for the default recipe with two
# threads on a quiet machine (PTB: 40, the epoch cap, in 351 s of 461; WikiText-2: 15 of
# 700 s; quality.md of 2026-12-03), so a row does not depend on what else the machine runs.
# Appends a tab-separated line to benchmarks/ablation.tsv; models stay in $OUT/TAG.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${CORPORA:-$ROOT/../shared/corpora}
OUT=${OUT:-/tmp/wordlstm-ablation}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 NO_COLOR=1 WORDLSTM_HOME=$OUT/$2
case $3 in
  ptb) TR=$C/ptb/ptb.valid.txt; VA=$C/ptb/ptb.test.txt; SPLIT="--split whitespace";;
  wt2) TR=$C/wikitext-2/test.txt; VA=$C/wikitext-2/valid.txt; SPLIT="--split whitespace";;
  shk) TR=$C/tinyshakespeare/train.txt; VA=$C/tinyshakespeare/valid.txt; SPLIT="--split words";;
esac
rm -rf "$WORDLSTM_HOME"
start=$(date +%s)
taskset -c "$1" python -m wordlstm train "$TR" --valid "$VA" $SPLIT --vocab-size 0 --model m \
  --epochs "$4" $5 > "$OUT/$2.train.log" 2>&1
end=$(date +%s)
taskset -c "$1" python -m wordlstm eval "$VA" --model m --json > "$OUT/$2.eval.json"
python - "$2" "$3" "$4" "$5" $((end - start)) "$OUT/$2.eval.json" >> "$ROOT/benchmarks/ablation.tsv" <<'PY'
import json, sys
tag, split, epochs, flags, seconds, path = sys.argv[1:]
e = json.loads(open(path).read().splitlines()[-1])
print("\t".join([tag, split, epochs, flags, seconds, f"{e['perplexity']:.2f}",
                 f"{e['model_perplexity']:.2f}", f"{100 * e['top1']:.1f}", f"{100 * e['top5']:.1f}",
                 f"{100 * e['keystroke_savings']:.1f}", f"{100 * e['top3_words']:.1f}"]))
PY
