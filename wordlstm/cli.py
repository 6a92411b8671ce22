"""The command line: parses flags, calls the jobs (pipeline, trainjob), renders results.

Heavy modules are imported inside the commands that need them, so that `complete` and
`score` start fast.
"""

import json
import os
import sys
from dataclasses import asdict

import typer

from wordlstm import __version__
from wordlstm.errors import BadInput, WordlstmError

app = typer.Typer(
    name="wordlstm",
    help="Next-word prediction with an LSTM language model written in NumPy.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(
    help="List, show and remove the models in the store.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")

MODEL_HELP = "a model name in the store, or a path to a model folder"


def stderr_console():
    """A rich console on stderr: colour only on a terminal and without NO_COLOR."""
    from rich.console import Console

    return Console(stderr=True, no_color="NO_COLOR" in os.environ, highlight=False, soft_wrap=True)


def show_progress(console) -> bool:
    return console.is_terminal and "NO_COLOR" not in os.environ


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wordlstm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="print the version"
    ),
) -> None:
    """Next-word prediction with an LSTM language model written in NumPy."""


@app.command()
def train(
    files: list[str] = typer.Argument(..., help="text files to train on (- for stdin)"),
    model: str = typer.Option("default", help="name (or folder path) to save the model as"),
    valid: str = typer.Option(
        None, help="validation text, its first 50,000 tokens (default: a held-out 10% tail)"
    ),
    embed: int = typer.Option(None, help="embedding size [default: --hidden]"),
    hidden: int = typer.Option(200, help="LSTM units per layer"),
    layers: int = typer.Option(2, help="stacked LSTM layers"),
    dropout: float = typer.Option(
        None,
        help="dropout on the embeddings, between layers and before the decoder "
        "[default: 0.6 up to 12 training tokens per vocabulary word, 0.4 less per doubling]",
    ),
    tied: bool = typer.Option(True, "--tied/--no-tied", help="share embedding and decoder weights"),
    forget_bias: float = typer.Option(
        1.0, help="added to the forget gates' initial bias, so that the cells start out remembering"
    ),
    bptt: int = typer.Option(35, help="steps of backpropagation through time per chunk"),
    batch_size: int = typer.Option(20, help="parallel streams per step"),
    epochs: int = typer.Option(40, help="passes over the training text"),
    max_time: float = typer.Option(None, help="wall-clock budget in seconds"),
    optimizer: str = typer.Option("sgd", help="sgd (lr /4 on plateaus) or adam"),
    lr: float = typer.Option(None, help="learning rate [default: 20 for sgd, 0.002 for adam]"),
    clip: float = typer.Option(0.25, help="global gradient-norm clip"),
    average: bool = typer.Option(
        True,
        "--average/--no-average",
        help="average the weights from the first plateau (lr kept) or the last 40% of the budget",
    ),
    seed: int = typer.Option(1111, help="random seed: same seed, same weights"),
    vocab_size: int = typer.Option(0, help="largest vocabulary, 0 = no cap"),
    min_freq: int = typer.Option(1, help="rarer words become <unk>"),
    lowercase: bool = typer.Option(False, "--lowercase", help="lowercase the text first"),
    split: str = typer.Option("words", help="words (split off punctuation) or whitespace"),
    resume: bool = typer.Option(
        False, "--resume", help="continue the interrupted training of --model (same files, flags)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
) -> None:
    """Train a model on text files and save it in the store; Ctrl-C saves it to --resume."""
    from wordlstm.errors import Interrupted
    from wordlstm.train import Recipe
    from wordlstm.trainjob import ModelSettings, TokenizerSettings, TrainJob, train_files

    job = TrainJob(
        files=files,
        model=model,
        valid=valid,
        seed=seed,
        tokenizer=TokenizerSettings(split, lowercase, vocab_size, min_freq),
        net=ModelSettings(
            hidden if embed is None else embed, hidden, layers, dropout, tied, forget_bias
        ),
        recipe=Recipe(
            epochs=epochs,
            max_time=max_time,
            optimizer=optimizer,
            lr=lr,
            clip=clip,
            average=average,
            bptt=bptt,
            batch_size=batch_size,
        ),
        resume=resume,
    )
    console = stderr_console()
    try:
        with TrainView(console, job.recipe.epochs) as view:
            result = train_files(
                job, on_progress=view.progress, on_epoch=view.epoch, on_retry=view.retry
            )
    except Interrupted as e:
        console.print(f"interrupted: {e}")
        console.print(f"resume with: {resume_command()}")
        raise typer.Exit(e.exit_code) from None
    if json_out:
        print_json(asdict(result))
    else:
        console.print(
            f"saved {result.model} ({result.path}): valid ppl {result.valid_ppl:.2f}, "
            f"{result.epochs} epochs, {result.seconds:.0f} s"
        )


def resume_command() -> str:
    """This command line as the user can paste it to resume: the same arguments + --resume."""
    import shlex

    args = sys.argv[1:]
    return shlex.join(["wordlstm", *args, *([] if "--resume" in args else ["--resume"])])


class TrainView:
    """Renders training: a live progress bar on a terminal, one line per epoch always."""

    def __init__(self, console, epochs: int) -> None:
        self.console = console
        self.epochs = epochs
        self.bar = None

    def __enter__(self) -> "TrainView":
        if show_progress(self.console):
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                TextColumn(
                    "{task.fields[speed]:,.0f} tok/s  loss {task.fields[loss]:.3f}"
                    "  ppl {task.fields[ppl]:.1f}"
                ),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                "train", total=1, epoch=1, epochs=self.epochs, speed=0.0, loss=0.0, ppl=0.0
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def progress(self, p) -> None:
        if self.bar is not None:
            import math

            self.bar.update(  # one bar for the whole run, so the time left is the run's
                self.task,
                total=p.steps * self.epochs,
                completed=(p.epoch - 1) * p.steps + p.step,
                epoch=p.epoch,
                speed=p.tokens_per_sec,
                loss=p.loss,
                ppl=math.exp(min(p.loss, 50)),
            )

    def retry(self, r) -> None:
        from wordlstm.train import MAX_RETRIES

        self.console.print(
            f"epoch {r.epoch:3d} | step {r.step}: {r.reason}; back to the start of the epoch"
            f" with lr {r.lr:g} (retry {r.retry} of {MAX_RETRIES})"
        )

    def epoch(self, e) -> None:
        mark = "saved as best" if e.improved else "saved, near best" if e.saved else "not better"
        self.console.print(
            f"epoch {e.epoch:3d} | train ppl {e.train_ppl:9.2f} | valid ppl {e.valid_ppl:9.2f}"
            f" | lr {e.lr:g} | {e.seconds:6.1f} s | {e.tokens / e.seconds:8,.0f} tok/s | {mark}"
        )


@app.command()
def complete(
    prompt: str = typer.Argument(None, help="the text to continue (default: one per stdin line)"),
    model: str = typer.Option("default", help=MODEL_HELP),
    top: int = typer.Option(5, help="how many next words to show"),
    words: int = typer.Option(0, help="continue the prompt by this many words"),
    sample: bool = typer.Option(False, "--sample", help="sample the continuation"),
    temperature: float = typer.Option(1.0, help="with --sample: <1 safer, >1 wilder"),
    seed: int = typer.Option(None, help="with --sample: a seed for a repeatable continuation"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per prompt"),
    partial: bool = typer.Option(
        None,
        "--partial/--no-partial",
        help="the prompt's last word is unfinished: offer its completions (the vocabulary's "
        "words starting with it, exact case first) [default: when no space follows and it is "
        "no known word but begins one]",
    ),
    beam: int = typer.Option(
        0, help="with --words: show this many most likely continuations (beam search)"
    ),
    top_k: int = typer.Option(0, help="with --sample: only the k likeliest words (0: all)"),
    top_p: float = typer.Option(
        1.0, help="with --sample: only the likeliest words that make up this probability"
    ),
) -> None:
    """The most likely next words after a prompt, and optionally a continuation."""
    if top < 0 or words < 0:
        raise BadInput("--top and --words must not be negative")
    if temperature <= 0:
        raise BadInput("--temperature must be positive")
    check_search_flags(beam, words, sample, top_k, top_p)
    from wordlstm.checkpoint import load_model
    from wordlstm.pipeline import complete as complete_prompts
    from wordlstm.text import argument_text, iter_input_lines, ready_batches

    loaded = load_model(model)
    prompts = [argument_text(prompt)] if prompt is not None else iter_input_lines(sys.stdin.buffer)
    n = 0
    for batch in ready_batches(prompts, 64):
        for c in complete_prompts(
            loaded,
            batch,
            top=top,
            words=words,
            sample=sample,
            seed=seed,
            first=n,
            temperature=temperature,
            partial=partial,
            top_k=top_k,
            top_p=top_p,
            beam=beam,
        ):
            if json_out:
                print_json(
                    {
                        "prompt": c.prompt,
                        "next": [{"word": w, "prob": p} for w, p in c.next],
                        "continuation": c.continuation,
                        "partial": c.fragment,
                        **beams_json(c.beams, beam),
                    }
                )
            else:
                if n:
                    sys.stdout.write("\n")
                if beam:
                    write_beams(c, beam)
                elif words:
                    sys.stdout.write(c.continued + "\n")
                for word, p in c.next:
                    sys.stdout.write(f"{word}\t{p:.4f}\n")
            n += 1
        sys.stdout.flush()


def check_search_flags(beam: int, words: int, sample: bool, top_k: int, top_p: float) -> None:
    """Bad combinations of complete's search and sampling flags are bad usage."""
    if beam < 0 or top_k < 0:
        raise BadInput("--beam and --top-k must not be negative")
    if beam and not words:
        raise BadInput("--beam needs --words, the length of the continuations")
    if beam and sample:
        raise BadInput("--beam and --sample exclude each other")
    if not 0 < top_p <= 1:
        raise BadInput("--top-p must be in (0, 1]")
    if (top_k or top_p < 1) and not sample:
        raise BadInput("--top-k and --top-p cut --sample's choices: add --sample")


def beams_json(beams: list[tuple[str, float, bool]], width: int) -> dict:
    """The "beams" member of complete's JSON, present with --beam."""
    if not width:
        return {}
    return {"beams": [{"text": t, "log_prob": lp, "ended": e} for t, lp, e in beams]}


def write_beams(c, width: int) -> None:
    """complete's text output with --beam: each continued prompt and its log-probability."""
    from wordlstm.pipeline import Completion

    for text, lp, _ in c.beams:
        shown = Completion(c.prompt, [], text, c.fragment, c.head).continued
        sys.stdout.write(f"{shown}\t{lp:.4f}\n")


@app.command()
def suggest(
    model: str = typer.Option("default", help=MODEL_HELP),
    top: int = typer.Option(3, help="how many suggestions to show, 1-9"),
) -> None:
    """Type with suggestions that follow every keystroke: Tab takes the highlighted one
    (Up/Down choose it), a digit takes that one, Enter prints the line to stdout and starts
    another, Ctrl-D prints what was typed and ends (exit 0), Ctrl-C ends (exit 130)."""
    if not 1 <= top <= 9:
        raise BadInput("--top must be 1 to 9 (the digit keys choose)")
    from wordlstm.autocomplete import Typing
    from wordlstm.checkpoint import load_model
    from wordlstm.suggest import run, terminal_output

    output = terminal_output()
    typing = Typing(load_model(model), top=top)

    def write(line: str) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()

    raise typer.Exit(run(typing, write, output=output))


@app.command()
def score(
    files: list[str] = typer.Argument(None, help="text files to score (default: stdin)"),
    model: str = typer.Option("default", help=MODEL_HELP),
    continuous: bool = typer.Option(
        False, "--continuous", help="carry the state from line to line, as in a document"
    ),
    per_token: bool = typer.Option(False, "--per-token", help="with --json: each token's log p"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Log-probability and perplexity of each input line: ppl, log_prob, tokens, text."""
    import math

    from wordlstm.checkpoint import load_model
    from wordlstm.pipeline import score_lines

    loaded = load_model(model)
    tokens = unknown = 0
    log_prob = 0.0
    for s in score_lines(loaded, input_lines(files or ["-"]), continuous=continuous):
        tokens += s.tokens
        unknown += s.unknown
        log_prob += s.log_prob
        if json_out:
            obj = {"text": s.text, "tokens": s.tokens, "log_prob": s.log_prob, "ppl": s.ppl}
            if per_token:
                obj["token_log_probs"] = [asdict(t) for t in s.token_scores]
            print_json(obj)
        else:
            sys.stdout.write(f"{s.ppl:.2f}\t{s.log_prob:.4f}\t{s.tokens}\t{s.text}\n")
            sys.stdout.flush()
    ppl = math.exp(-log_prob / tokens) if tokens else float("nan")
    share = 100.0 * unknown / tokens if tokens else 0.0
    stderr_console().print(
        f"tokens {tokens} | unknown {unknown} ({share:.2f}%) | perplexity {ppl:.2f}"
    )


@app.command("eval")
def evaluate(
    file: str = typer.Argument(..., help="the text to evaluate on"),
    model: str = typer.Option("default", help=MODEL_HELP),
    batch_size: int = typer.Option(10, help="parallel streams (10, as the PyTorch example)"),
    bptt: int = typer.Option(35, help="steps per chunk; the state carries across chunks"),
    json_out: bool = typer.Option(False, "--json", help="print the figures as JSON"),
    keyboard: bool = typer.Option(
        True, "--keyboard/--no-keyboard", help="also the keystroke savings and top-3 of words"
    ),
) -> None:
    """Perplexity and top-1/top-5 next-word accuracy on a file (the benchmark protocol).

    Keyboard figures, each line typed word by word with its earlier words as context: after
    each typed character (and before the first) a word is accepted with one keystroke,
    which also types the space, once it is among the 3 likeliest vocabulary words that
    start with the typed prefix (case as typed; <eos>, <unk> never offered); else it is
    typed in full plus a space. Keystroke savings = 1 - keystrokes used / keystrokes of
    typing everything. A literal <unk> in the text is not typed; unknown words are typed
    in full. Top-3 of words: the share of words offered before their first character.
    """
    from wordlstm.checkpoint import load_model
    from wordlstm.pipeline import evaluate_file

    loaded = load_model(model)
    r = evaluate_file(loaded, file, batch_size=batch_size, bptt=bptt)
    if keyboard:
        from wordlstm.keyboard import keyboard_file

        r |= keyboard_file(loaded, file)
    if json_out:
        print_json(r)
        return
    rows = [
        ("perplexity", f"{r['perplexity']:.2f}"),
        ("top-1 accuracy", f"{100 * r['top1']:.2f}%"),
        ("top-5 accuracy", f"{100 * r['top5']:.2f}%"),
        ("top-1 / top-5 of words", f"{100 * r['top1_words']:.2f}% / {100 * r['top5_words']:.2f}%"),
        ("tokens", f"{r['tokens']:,}"),
        ("unknown rate", f"{100 * r['unknown_rate']:.2f}%"),
    ]
    if keyboard:
        rows += [
            ("keystroke savings", f"{100 * r['keystroke_savings']:.2f}%"),
            ("top-3 of words typed", f"{100 * r['top3_words']:.2f}%"),
        ]
    width = max(len(name) for name, _ in rows)
    sys.stdout.write("".join(f"{name:<{width}}  {value}\n" for name, value in rows))


def input_lines(files: list[str]):
    """The lines of the files in order, - meaning stdin, read as untrusted text."""
    from wordlstm.text import iter_input_lines

    for name in files:
        if name == "-":
            yield from iter_input_lines(sys.stdin.buffer)
            continue
        try:
            stream = open(name, "rb")
        except OSError as e:
            raise BadInput(f"cannot read {name}: {e.strerror}") from None
        with stream:
            yield from iter_input_lines(stream)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """The models in the store, as a table."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from wordlstm import store

    table = Table(box=None, pad_edge=False)
    for column in ("name", "vocab", "layers x hidden", "params", "valid ppl", "tokens", "saved"):
        table.add_column(column, no_wrap=True)
    for name, config in store.list_models():
        arch = config.get("architecture", {})
        metrics = config.get("metrics", {})
        table.add_row(
            name,
            f"{arch.get('vocab', 0):,}",
            f"{arch.get('layers', '?')} x {arch.get('hidden', '?')}",
            f"{count_params(arch):,}",
            f"{metrics.get('valid_ppl', float('nan')):.2f}",
            f"{metrics.get('trained_tokens', 0):,}",
            str(config.get("saved", ""))[:16].replace("T", " "),
        )
    if table.row_count == 0:
        stderr_console().print(f"no models in {store.home()}")
        return
    console = Console(no_color="NO_COLOR" in os.environ, highlight=False)
    if not console.is_terminal:
        console.width = 200  # a pipe has no width; never wrap rows
    console.print(table)


def count_params(arch: dict) -> int:
    """Parameters of an architecture as config.json records it (0 if it is unreadable)."""
    from wordlstm.model import Architecture

    try:
        return Architecture(**arch).param_count()
    except (TypeError, WordlstmError):
        return 0


@models_app.command("show")
def models_show(
    name: str = typer.Argument(..., help=MODEL_HELP),
    json_out: bool = typer.Option(False, "--json", help="print config.json as is"),
) -> None:
    """Everything config.json records about a model."""
    from wordlstm import store

    path = store.resolve(name)
    config, _, weights = store.load(path)
    if json_out:
        print_json(config)
        return
    arch = config["architecture"]
    lines = [
        f"name          {name}",
        f"path          {path}",
        f"saved         {config.get('saved', '?')}",
        f"architecture  embed {arch['embed']}, {arch['layers']} x {arch['hidden']} LSTM, "
        f"vocabulary {arch['vocab']:,}{', tied' if arch.get('tied') else ''}, "
        f"dropout {config.get('dropout')}",
        f"parameters    {count_params(arch):,}",
        f"tokenizer     {json.dumps(config.get('tokenizer', {}))}",
        f"recipe        {json.dumps(config.get('recipe', {}))}",
        f"metrics       {json.dumps(config.get('metrics', {}))}",
    ]
    if config.get("unfinished"):
        lines.append("status        unfinished: interrupted before its first epoch ended")
    for e in config.get("history", []):
        lines.append(
            f"  epoch {e['epoch']:3d}  train ppl {e['train_ppl']:9.2f}  valid ppl "
            f"{e['valid_ppl']:9.2f}  lr {e['lr']:g}  {e['seconds']:.1f} s"
        )
    sys.stdout.write("\n".join(lines) + "\n")


@models_app.command("rm")
def models_rm(name: str = typer.Argument(..., help=MODEL_HELP)) -> None:
    """Delete a model from the store."""
    from wordlstm import store

    path = store.resolve(name)
    store.remove(path)
    stderr_console().print(f"removed {name} ({path})")


def main() -> None:
    """Runs the CLI: errors become one `error:` line and an exit code (2 bad input,
    1 run-time failure, 130 interrupted); WORDLSTM_DEBUG=1 shows tracebacks."""
    debug = os.environ.get("WORDLSTM_DEBUG") == "1"
    try:
        code = app(standalone_mode=False)
    except WordlstmError as e:
        fail(str(e), e.exit_code, debug)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error; silence the final flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except MemoryError:
        fail("out of memory", 1, debug)
    except OSError as e:
        fail(f"{e.strerror or e}{f': {e.filename}' if e.filename else ''}", 1, debug)
    except Exception as e:
        # typer's usage errors are click exceptions, vendored or not: known by their shape
        if type(e).__name__ == "Abort":
            code = 130
        elif type(e).__name__ == "NoArgsIsHelpError":  # plain `wordlstm`: show the help
            sys.stdout.write(e.ctx.get_help() + "\n")
            code = 0
        elif hasattr(e, "format_message") and hasattr(e, "exit_code"):
            ctx = getattr(e, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            fail(f"{e.format_message()}{where}", e.exit_code, debug)
        else:  # a bug: still one line unless debugging
            fail(
                f"unexpected {type(e).__name__}: {e} (WORDLSTM_DEBUG=1 shows the traceback)",
                1,
                debug,
            )
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int, debug: bool) -> None:
    if debug:
        raise
    first = message.splitlines()[0] if message else "failed"
    sys.stderr.write(f"error: {first}\n")
    sys.exit(code)
