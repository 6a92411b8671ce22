"""Where a training step's time goes, at configs S and L of benchmarks/speed.py (synthetic
tokens, V = 10,000, untied, no dropout): each phase of `training.train_step` timed apart,
with its matrix-product FLOPs and the share of the machine's float32 matmul peak it reaches.

    python benchmarks/phases.py [--steps 20] [--out benchmarks/phases.md]

Phases: the LSTM's forward (embedding lookup included), the decoder's loss (logits,
softmax, cross-entropy and the decoder's gradients, fused), the LSTM's backward (to the
embedding's rows), the gradient's global norm, and the SGD update. Medians over the steps.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import CONFIGS, WARMUP, V, matmul_peak, numpy_model, uniform_tokens  # noqa: E402

PHASES = ("LSTM forward", "decoder loss", "LSTM backward", "global norm", "SGD update")


def lstm_flops(layers: int, hidden: int, embed: int) -> float:
    """Forward matrix-product FLOPs per token of the LSTM's layers."""
    return sum(2 * 4 * hidden * ((embed if k == 0 else hidden) + hidden) for k in range(layers))


def phase_times(config: str, steps: int) -> dict[str, float]:
    """Median seconds of each phase of a training step."""
    from wordlstm.backend import keep_freed_memory
    from wordlstm.optim import SGD, clip_scale, global_norm

    keep_freed_memory()  # as the command line runs
    layers, hidden, embed, batch, bptt = CONFIGS[config]
    model = numpy_model(layers, hidden, embed)
    optimizer = SGD(model.params, 20.0)
    data = uniform_tokens(V, ((WARMUP + steps) * bptt + 1, batch))
    state = model.zero_state(batch)
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for s in range(WARMUP + steps):
        x, y = data[s * bptt : (s + 1) * bptt], data[s * bptt + 1 : (s + 1) * bptt + 1]
        t = [time.perf_counter()]
        out, state, cache = model.forward(x, state)
        t.append(time.perf_counter())
        _, dout, decoder_grads = model.loss(out, y)
        t.append(time.perf_counter())
        grads, _ = model.backward(cache, dout, decoder_grads)
        t.append(time.perf_counter())
        norm = global_norm(grads)
        t.append(time.perf_counter())
        optimizer.step(grads, scale=clip_scale(norm, 0.25))
        t.append(time.perf_counter())
        del cache, out, dout, decoder_grads, grads
        if s >= WARMUP:
            for phase, a, b in zip(PHASES, t, t[1:], strict=False):
                times[phase].append(b - a)
    return {phase: statistics.median(v) for phase, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).with_name("phases.md")))
    args = p.parse_args()
    peak = statistics.median(matmul_peak(args.steps)) * 1e9
    lines = [
        "# Where a training step's time goes",
        "",
        f"Measured by `python benchmarks/phases.py --steps {args.steps}` on {os.cpu_count()} "
        f"cores ({datetime.date.today()}), the threads OpenBLAS chose. Float32 matmul peak in "
        f"this run: {peak / 1e9:.0f} GFLOP/s (speed.py's 2240x650 @ 650x10000). A phase's "
        "bound is its matrix-product FLOPs at that peak; element-wise work has none.",
    ]
    for config in CONFIGS:
        layers, hidden, embed, batch, bptt = CONFIGS[config]
        tokens = batch * bptt
        lstm = lstm_flops(layers, hidden, embed) * tokens
        flops = {
            "LSTM forward": lstm,
            "decoder loss": 3 * 2 * hidden * V * tokens,
            "LSTM backward": 2 * lstm,
            "global norm": 0.0,
            "SGD update": 0.0,
        }
        times = phase_times(config, args.steps)
        total = sum(times.values())
        lines += [
            "",
            f"## Config {config}: {layers}x{hidden}, batch {batch}, bptt {bptt} "
            f"({tokens} tokens a step): {total * 1e3:.1f} ms a step, "
            f"{tokens / total:,.0f} tok/s; bound at peak {sum(flops.values()) / peak * 1e3:.1f} ms",
            "",
            "| phase | ms | share of the step | GFLOP | GFLOP/s | share of peak |",
            "|---|---|---|---|---|---|",
        ]
        for phase in PHASES:
            sec, f = times[phase], flops[phase]
            rate = f"{f / sec / 1e9:.0f}" if f else "-"
            share = f"{f / sec / peak:.0%}" if f else "-"
            lines.append(
                f"| {phase} | {sec * 1e3:.1f} | {sec / total:.0%} | {f / 1e9:.2f} | {rate} "
                f"| {share} |"
            )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
