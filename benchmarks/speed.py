"""Speed of wordlstm against PyTorch's nn.LSTM on this CPU, measured in one run.

    python benchmarks/speed.py [--rounds 5] [--steps 20] [--out benchmarks/speed.md]

Training step = forward, cross-entropy, backward, global-norm clip (0.25), SGD update on a
bptt x batch chunk of synthetic tokens (V = 10,000, untied, no dropout), the state carried
from step to step: the recipe of ../shared/reference/throughput.py. Each measurement runs in
a fresh worker process (so neither side's thread pool disturbs the other), wordlstm and
PyTorch alternate, and every figure is a median: of the steps within a worker, then of the
rounds. Ratios are taken round by round, so a machine that drifts affects both sides alike.
PyTorch is used only when installed (`pip install torch`); wordlstm never imports it.

Also measured: scoring tokens/s (eval forward + log-softmax + gather, batch 64), the whole
process wall time of `wordlstm complete` on a config-S model, peak RSS of training at
config L, and the machine's float32 matmul peak (the bound the shares refer to).
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

V = 10_000
DIV_VALUE = 4.0  # the adaptive softmax's projection divisor (PyTorch's default)
CONFIGS = {  # name: (layers, hidden, embed, batch, bptt)
    "S": (2, 200, 200, 20, 35),
    "L": (2, 650, 650, 64, 35),
}
SCORE_BATCH = 64
WARMUP = 3
QUIET_CORES, MAX_TRIES = 0.1, 3  # other processes' load above which a measurement is rerun


def flops_per_token(layers: int, hidden: int, embed: int) -> float:
    """Matrix-product FLOPs per training token, forward + backward (3x the forward)."""
    lstm = sum(2 * 4 * hidden * ((embed if k == 0 else hidden) + hidden) for k in range(layers))
    decoder = 2 * hidden * V
    return 3.0 * (lstm + decoder)


# ---------------------------------------------------------------- workers (one per process)


def uniform_tokens(vocab: int, shape: tuple[int, int]) -> np.ndarray:
    """Synthetic token ids, every one as likely: (rows, streams)."""
    return np.random.default_rng(1234).integers(0, vocab, size=shape)


@dataclass(frozen=True)
class Vocab:
    """What a model predicts and how: `size` words, through the full softmax (`cutoffs`
    None) or the adaptive one split at `cutoffs`, trained on the ids `tokens(size, shape)`
    gives."""

    size: int = V
    cutoffs: tuple[int, ...] | None = None
    tokens: Callable[[int, tuple[int, int]], np.ndarray] = uniform_tokens


def numpy_model(layers, hidden, embed, vocab: Vocab = Vocab()):
    """An untied model."""
    from wordlstm.model import Architecture, LanguageModel

    adaptive = {} if vocab.cutoffs is None else {"softmax": "adaptive", "cutoffs": vocab.cutoffs}
    arch = Architecture(
        vocab=vocab.size, embed=embed, hidden=hidden, layers=layers, div_value=DIV_VALUE, **adaptive
    )
    return LanguageModel.init(arch, np.random.default_rng(0))


def numpy_train(config: str, steps: int, vocab: Vocab = Vocab()) -> list[float]:
    """Seconds of each training step after the warm-up."""
    from wordlstm.optim import SGD
    from wordlstm.training import train_step

    layers, hidden, embed, batch, bptt = CONFIGS[config]
    model = numpy_model(layers, hidden, embed, vocab)
    optimizer = SGD(model.params, 20.0)
    data = vocab.tokens(vocab.size, ((WARMUP + steps) * bptt + 1, batch))
    state = model.zero_state(batch)
    times = []
    for s in range(WARMUP + steps):
        x, y = data[s * bptt : (s + 1) * bptt], data[s * bptt + 1 : (s + 1) * bptt + 1]
        t0 = time.perf_counter()
        _, state = train_step(model, optimizer, x, y, state, 0.25)
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def numpy_score(config: str, steps: int) -> list[float]:
    layers, hidden, embed, _, bptt = CONFIGS[config]
    model = numpy_model(layers, hidden, embed)
    data = uniform_tokens(V, ((WARMUP + steps) * bptt + 1, SCORE_BATCH))
    state = model.zero_state(SCORE_BATCH)
    times = []
    for s in range(WARMUP + steps):
        x, y = data[s * bptt : (s + 1) * bptt], data[s * bptt + 1 : (s + 1) * bptt + 1]
        t0 = time.perf_counter()
        out, state, _ = model.forward(x, state)
        float(model.score(out, y)[0].sum())
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def torch_model(layers, hidden, embed, vocab: Vocab = Vocab()):
    """The same model in PyTorch: its forward gives the decoder's input (rows, hidden) and
    `loss` the mean cross-entropy after it, through nn.Linear or, with cut-offs,
    nn.AdaptiveLogSoftmaxWithLoss."""
    import torch
    import torch.nn.functional as F

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Embedding(vocab.size, embed)
            self.rnn = torch.nn.LSTM(embed, hidden, layers)
            if vocab.cutoffs is None:
                self.decoder = torch.nn.Linear(hidden, vocab.size)
            else:
                self.decoder = torch.nn.AdaptiveLogSoftmaxWithLoss(
                    hidden, vocab.size, list(vocab.cutoffs), DIV_VALUE, head_bias=True
                )

        def forward(self, x, state):
            out, state = self.rnn(self.encoder(x), state)
            return out.reshape(-1, hidden), state

        def loss(self, out, y):
            if vocab.cutoffs is None:
                return F.cross_entropy(self.decoder(out), y)
            return self.decoder(out, y).loss

    torch.set_num_threads(2)
    torch.manual_seed(0)
    return LM()


def torch_train(config: str, steps: int, vocab: Vocab = Vocab()) -> list[float]:
    """`numpy_train` in PyTorch, on the same ids."""
    import torch

    layers, hidden, embed, batch, bptt = CONFIGS[config]
    model = torch_model(layers, hidden, embed, vocab)
    params = list(model.parameters())
    data = torch.from_numpy(vocab.tokens(vocab.size, ((WARMUP + steps) * bptt + 1, batch)))
    state = (torch.zeros(layers, batch, hidden), torch.zeros(layers, batch, hidden))
    times = []
    for s in range(WARMUP + steps):
        x, y = data[s * bptt : (s + 1) * bptt], data[s * bptt + 1 : (s + 1) * bptt + 1]
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        state = tuple(t.detach() for t in state)
        out, state = model(x, state)
        loss = model.loss(out, y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.25)
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-20.0)
        loss.item()
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def torch_score(config: str, steps: int) -> list[float]:
    import torch

    layers, hidden, embed, _, bptt = CONFIGS[config]
    model = torch_model(layers, hidden, embed).eval()
    g = torch.Generator().manual_seed(1234)
    data = torch.randint(0, V, ((WARMUP + steps) * bptt + 1, SCORE_BATCH), generator=g)
    state = (torch.zeros(layers, SCORE_BATCH, hidden), torch.zeros(layers, SCORE_BATCH, hidden))
    times = []
    with torch.no_grad():
        for s in range(WARMUP + steps):
            x, y = data[s * bptt : (s + 1) * bptt], data[s * bptt + 1 : (s + 1) * bptt + 1]
            t0 = time.perf_counter()
            out, state = model(x, state)
            logp = torch.log_softmax(model.decoder(out), dim=-1)
            float(logp.gather(1, y.reshape(-1, 1)).sum())
            times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def matmul_peak(steps: int) -> list[float]:
    """GFLOP/s of float32 2240x650 @ 650x10000 with NumPy (the config-L decoder product)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2240, 650), dtype=np.float32)
    b = rng.standard_normal((650, 10000), dtype=np.float32)
    out = np.empty((2240, 10000), dtype=np.float32)
    times = []
    for _ in range(WARMUP + steps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return [2 * 2240 * 650 * 10000 / t / 1e9 for t in times[WARMUP:]]


WORKERS = {
    ("numpy", "train"): numpy_train,
    ("numpy", "score"): numpy_score,
    ("torch", "train"): torch_train,
    ("torch", "score"): torch_score,
}


def report(measurement: Callable[[], list[float]], wordlstm: bool) -> None:
    """A worker's output: the values `measurement()` gives and the process's peak RSS, as one
    JSON line. `wordlstm`: the process first keeps freed memory, as the command line does."""
    if wordlstm:
        from wordlstm.backend import keep_freed_memory

        keep_freed_memory()
    values = measurement()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"values": values, "peak_rss_mb": rss_kb / 1024}))


def worker(side: str, task: str, config: str, steps: int) -> None:
    if task == "matmul":
        report(lambda: matmul_peak(steps), wordlstm=False)
    else:
        report(lambda: WORKERS[(side, task)](config, steps), wordlstm=side == "numpy")


# ---------------------------------------------------------------- the orchestrator


def training_memory_mb(config: str) -> dict[str, float]:
    """What one training step at a config needs to hold, in MB of float32."""
    layers, hidden, embed, batch, bptt = CONFIGS[config]
    n = bptt * batch
    params = V * embed + V * hidden + V
    params += sum(4 * hidden * ((embed if k == 0 else hidden) + hidden + 2) for k in range(layers))
    # forward, kept for backward: the embeddings, and per layer the gates, h, c and tanh(c)
    activations = n * embed + layers * 7 * n * hidden
    # backward, one layer at a time: gate gradients (step-major, then as one matrix for the
    # weight gradients), dL/dc from h, dx, and dL/d(output)
    backward = 2 * 4 * n * hidden + n * hidden + n * max(embed, hidden) + n * hidden
    logits = min(n * V, 8 * 1024 * 1024)
    mb = {
        "parameters": params,
        "gradients": params,
        "activations": activations,
        "backward": backward,
        "logits": logits,
    }
    mb = {k: 4 * v / 2**20 for k, v in mb.items()}
    mb["total"] = sum(mb.values())
    return mb


def cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its finished
    children) from /proc/stat and os.times; None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]  # user ... steal
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    own = os.times()
    return (
        (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"),
        own.user + own.system + own.children_user + own.children_system,
    )


def spawn(side: str, task: str, config: str, steps: int) -> dict:
    """One measurement of this script's in a fresh worker process (`measure`)."""
    return measure([__file__, "--worker", side, task, config, "--steps", str(steps)])


def measure(args: list[str]) -> dict:
    """The JSON line of the worker `python ARGS` (a fresh process, printing as `report`).
    The result also says how many cores other processes kept busy meanwhile
    (`foreign_cores`): on 2 cores one busy neighbour can make a 2-thread BLAS collapse, so a
    measurement during which others took more than a tenth of a core is run again (at most
    three tries) and the quietest one kept (`tries` says how many it took)."""
    cmd = [sys.executable, *args]
    best = None
    for tries in range(1, MAX_TRIES + 1):
        before, t0 = cpu_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall, after = time.perf_counter() - t0, cpu_seconds()
        result = json.loads(proc.stdout.splitlines()[-1])
        foreign = 0.0
        if before and after:
            foreign = max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / wall
        result["foreign_cores"], result["tries"] = foreign, tries
        if best is None or foreign < best["foreign_cores"]:
            best = result
        if foreign <= QUIET_CORES:
            break
    return best


def torch_installed() -> bool:
    """Whether PyTorch can be imported, found without importing it: a worker's peak RSS
    counts from its parent's at the fork, which torch would raise by ~115 MB."""
    return importlib.util.find_spec("torch") is not None


def tokens_per_sec(result: dict, tokens: int) -> float:
    return statistics.median(tokens / t for t in result["values"])


def complete_wall_time(runs: int) -> list[float]:
    """Whole-process seconds of `wordlstm complete` on a config-S model (random weights,
    a 10,000-word vocabulary), with the package's bytecode compiled as `pip install` leaves
    it (an editable install under PYTHONDONTWRITEBYTECODE would compile every module anew
    in every run)."""
    import compileall

    import wordlstm
    from wordlstm import checkpoint
    from wordlstm.tokenizer import Tokenizer

    compileall.compile_dir(Path(wordlstm.__file__).parent, quiet=1)

    home = Path(tempfile.mkdtemp(prefix="wordlstm-bench-"))
    words = [f"w{i}" for i in range(V - 2)]
    tokenizer = Tokenizer.train([" ".join(words)], split="whitespace")
    model = numpy_model(2, 200, 200)
    checkpoint.save_model(home / "s", model, tokenizer, {"metrics": {}})
    env = dict(os.environ, WORDLSTM_HOME=str(home))
    prompt = " ".join(words[:20])
    cmd = [sys.executable, "-m", "wordlstm", "complete", prompt, "--model", "s", "--top", "10"]
    times = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times[1:]  # the first run warms the page cache


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).with_name("speed.md")))
    p.add_argument("--worker", nargs=3, metavar=("SIDE", "TASK", "CONFIG"))
    args = p.parse_args()
    if args.worker:
        worker(*args.worker, args.steps)
        return
    sides = ["numpy", "torch"]
    if not torch_installed():
        sides = ["numpy"]
        print("PyTorch is not installed: measuring wordlstm alone", file=sys.stderr)

    rows: dict[tuple, list[float]] = {}
    rss: dict[tuple, float] = {}
    peaks, load = [], []
    for r in range(args.rounds):
        result = spawn("numpy", "matmul", "-", args.steps)
        peaks.append(statistics.median(result["values"]))
        load.append(result)
        for task, config in (("train", "S"), ("train", "L"), ("score", "S")):
            layers, hidden, embed, batch, bptt = CONFIGS[config]
            tokens = bptt * (SCORE_BATCH if task == "score" else batch)
            steps = args.steps if config == "S" else max(5, args.steps // 2)
            for side in sides if r % 2 == 0 else sides[::-1]:
                result = spawn(side, task, config, steps)
                load.append(result)
                rows.setdefault((task, config, side), []).append(tokens_per_sec(result, tokens))
                rss[(task, config, side)] = result["peak_rss_mb"]
                print(
                    f"round {r + 1} {task} {config} {side}: "
                    f"{rows[(task, config, side)][-1]:,.0f} tok/s "
                    f"(others {result['foreign_cores']:.2f} cores, try {result['tries']})",
                    file=sys.stderr,
                )
    wall = complete_wall_time(15)
    peak = statistics.median(peaks)
    write_table(args.out, rows, rss, peak, wall, sides, load)
    print(Path(args.out).read_text())


def write_table(out, rows, rss, peak, wall, sides, load) -> None:
    lines = [
        "# Speed: wordlstm against PyTorch on this machine",
        "",
        f"Measured by `python benchmarks/speed.py` on {os.cpu_count()} cores "
        f"({time.strftime('%Y-%m-%d')}). Medians; the ratio is the median of per-round ratios "
        f"(the sides alternate, each in a fresh process). NumPy float32 matmul peak in this "
        f"run: **{peak:.0f} GFLOP/s** (2240x650 @ 650x10000).",
        "",
        "| measurement | wordlstm tok/s | PyTorch tok/s | ratio | FLOPs/token | bound at peak "
        "| wordlstm share of bound | peak RSS wordlstm / PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, config in (("train", "S"), ("train", "L"), ("score", "S")):
        layers, hidden, embed, batch, bptt = CONFIGS[config]
        ours = rows[(task, config, "numpy")]
        theirs = rows.get((task, config, "torch"))
        fpt = flops_per_token(layers, hidden, embed) / (3.0 if task == "score" else 1.0)
        bound = peak * 1e9 / fpt
        cells = [
            f"{task} {config} ({layers}x{hidden}, "
            f"batch {SCORE_BATCH if task == 'score' else batch})",
            f"{statistics.median(ours):,.0f}",
            f"{statistics.median(theirs):,.0f}" if theirs else "-",
            f"**{statistics.median(a / b for a, b in zip(ours, theirs, strict=True)):.2f}x**"
            if theirs
            else "-",
            f"{fpt / 1e6:.1f} M",
            f"{bound:,.0f}",
            f"{statistics.median(ours) / bound:.0%}",
            f"{rss[(task, config, 'numpy')]:.0f} MB / "
            + (f"{rss[(task, config, 'torch')]:.0f} MB" if theirs else "-"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    need = training_memory_mb("L")
    lines += [
        "",
        f"Training memory at config L: parameters + gradients (SGD keeps no other state) + the "
        f"activations one BPTT chunk keeps for backward + one block of logits = "
        f"{need.pop('total'):.0f} MB ({', '.join(f'{k} {v:.0f}' for k, v in need.items())}); "
        f"the peak RSS above includes the Python, NumPy and BLAS footprint of the process.",
        "",
        f"`wordlstm complete` on a config-S model (V = 10,000, 20-word prompt, top 10), whole "
        f"process: median **{statistics.median(wall):.3f} s** over {len(wall)} runs "
        f"(min {min(wall):.3f}, max {max(wall):.3f}).",
        "",
        f"Other processes on the machine during the {len(load)} measurements kept a median of "
        f"{statistics.median(r['foreign_cores'] for r in load):.2f} cores busy (max "
        f"{max(r['foreign_cores'] for r in load):.2f}); {sum(r['tries'] > 1 for r in load)} "
        f"measurements were rerun for a busier machine than {QUIET_CORES} cores.",
        "",
    ]
    Path(out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
