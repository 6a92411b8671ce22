"""The command line: parses flags, calls the Python API (`wordlstm.api`), renders results.

The API imports heavy modules only inside the functions that need them, so that `complete`
and `score` start fast.
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict

import typer

from wordlstm import __version__, api
from wordlstm.api import BadInput, SettingsDiffer, WordlstmError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def examples(*lines: str) -> str:
    """A help epilog of example command lines, kept as written (\\b: click does not rewrap)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    name="wordlstm",
    help="Next-word prediction with an LSTM language model written in NumPy.",
    epilog=examples(
        "wordlstm train corpora/demo.txt --max-time 180",
        'wordlstm complete "Last year, due to my job, I"',
    ),
    context_settings=HELP_OPTIONS,
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(
    help="List, show and remove the models in the store.",
    epilog=examples(
        "wordlstm models",
        "wordlstm models --json",
        "wordlstm models | awk -F'\\t' '$9 == \"broken\" {print $1}'",
    ),
    context_settings=HELP_OPTIONS,
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")

MODEL_HELP = "a model name in the store, or a path to a model folder"
THREADS_HELP = "threads for the matrix products [default: OPENBLAS_NUM_THREADS or OMP_NUM_THREADS"
FIELD_OF = {"continue_run": "continued"}  # train's parameters not named as their settings
FLAG_OF = {"continued": "--continue"}  # and their flags


def flag(field: str) -> str:
    """The flag that gives the setting `field` (the name the API and its errors use)."""
    return FLAG_OF.get(field, "--" + field.replace("_", "-"))


def message(e: WordlstmError) -> str:
    """An error's message in the command line's words: settings named by their flags."""
    return e.worded(flag) if isinstance(e, WordlstmError) else str(e)


def no_color() -> bool:
    """Whether NO_COLOR asks for no colour: set and not empty (no-color.org). It turns off
    colour only; progress bars stay."""
    return bool(os.environ.get("NO_COLOR"))


def stderr_console():
    """A rich console on stderr: colour only on a terminal and without NO_COLOR."""
    from rich.console import Console

    return Console(stderr=True, no_color=no_color(), highlight=False, soft_wrap=True)


def show_progress(console) -> bool:
    """Progress bars go to a terminal only."""
    return console.is_terminal


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"wordlstm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="print the version"
    ),
) -> None:
    """Next-word prediction with an LSTM language model written in NumPy."""
    if ctx.invoked_subcommand != "train":
        end_as_a_filter_on_a_closed_pipe()


def end_as_a_filter_on_a_closed_pipe() -> None:
    """When the reader of the output goes away (`| head`), end as cat and grep do: killed
    by SIGPIPE at the next write, silently (status 141 in a shell). Not for train: a log
    reader that goes away must not kill a run between its saves."""
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


@app.command(
    epilog=examples(
        "wordlstm train corpora/demo.txt --max-time 180",
        "wordlstm train ptb.train.txt --valid ptb.valid.txt --split whitespace --model ptb",
        "wordlstm train a.txt b.txt --model mine --hidden 650 --dropout 0.5",
    )
)
def train(
    ctx: typer.Context,
    files: list[str] = typer.Argument(
        None, help="text files to train on (- for stdin); with --resume, default: the run's"
    ),
    model: str = typer.Option("default", help="name (or folder path) to save the model as"),
    valid: str = typer.Option(
        None, help="validation text, its first 50,000 tokens (default: a held-out 10% tail)"
    ),
    embed: int = typer.Option(None, help="embedding size [default: --hidden]"),
    hidden: int = typer.Option(200, help="LSTM units per layer"),
    layers: int = typer.Option(2, help="stacked LSTM layers"),
    dropout: float = typer.Option(
        None,
        help="dropout before the decoder, and on the embeddings and between layers unless "
        "--dropout-input or --dropout-hidden gives a rate of its own "
        "[default: 0.6 up to 12 training tokens per vocabulary word, 0.4 less per doubling]",
    ),
    dropout_input: float = typer.Option(
        None, help="dropout on the embeddings fed to the first layer [default: --dropout]"
    ),
    dropout_hidden: float = typer.Option(
        None, help="dropout between the layers [default: --dropout]"
    ),
    locked: bool = typer.Option(
        False,
        "--locked",
        help="locked (variational) dropout at those three places: one mask per sequence "
        "for a whole chunk, not a new one at every step",
    ),
    embed_dropout: float = typer.Option(
        0.0, help="embedding dropout: whole words dropped (their vectors zeroed) for a chunk"
    ),
    weight_drop: float = typer.Option(
        0.0, help="DropConnect on the hidden-to-hidden weights, one mask per chunk"
    ),
    ar: float = typer.Option(
        0.0,
        help="activation regularisation: adds AR * mean(h^2) to the loss, h the last layer's "
        "output after dropout",
    ),
    tar: float = typer.Option(
        0.0,
        help="temporal activation regularisation: adds TAR * mean((h_t - h_t-1)^2) to the "
        "loss, h the last layer's output before dropout",
    ),
    tied: bool = typer.Option(
        True,
        "--tied/--no-tied",
        help="share embedding and decoder weights (adaptive: the head's word rows)",
    ),
    softmax: str = typer.Option(
        "auto",
        help="full, or adaptive: frequent words in a small head, rarer ones in clusters behind "
        "narrower projections (Grave et al. 2017), for large vocabularies; auto: adaptive from "
        f"{api.ADAPTIVE_FROM:,} words",
    ),
    cutoffs: str = typer.Option(
        None,
        help="adaptive: the word ranks where the head and each cluster end, e.g. 2000,10000 "
        "[default: 2000, 10000, 50000, ... up to half the vocabulary]",
    ),
    div_value: float = typer.Option(
        4.0, help="adaptive: each cluster's projection is this many times narrower than the last"
    ),
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
    schedule: str = typer.Option(
        "plateau",
        help="plateau (sgd: lr /4 on plateaus) or budget (lr kept; averaging over the last 40% "
        "of --epochs or --max-time)",
    ),
    lr_floor: float = typer.Option(
        0.0, help="sgd: plateaus divide the lr no lower than this; training goes on at it"
    ),
    seed: int = typer.Option(1111, help="random seed: same seed, same weights"),
    vocab_size: int = typer.Option(0, help="largest vocabulary, 0 = no cap"),
    min_freq: int = typer.Option(1, help="rarer words become <unk>"),
    lowercase: bool = typer.Option(False, "--lowercase", help="lowercase the text first"),
    split: str = typer.Option("words", help="words (split off punctuation) or whitespace"),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue the interrupted training of --model; files and flags not given are the "
        "run's (those given must be the run's)",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="replace the model that --model holds (kept until an epoch of the new run is "
        "validated)",
    ),
    continue_run: bool = typer.Option(
        False,
        "--continue",
        help="train the model --model further on these files: its architecture and vocabulary, "
        "and the recipe flags not given as it was trained (lr: that of its last epoch)",
    ),
    grow_vocab: bool = typer.Option(
        False,
        "--grow-vocab",
        help="with --continue: add the words of the files seen --min-freq times to the "
        "vocabulary (up to --vocab-size in all)",
    ),
    threads: int = typer.Option(
        None,
        help=THREADS_HELP + " if set, else 2, or 1 while other processes keep the cores busy, "
        "chosen again each epoch and every 10 s]",
    ),
    json_out: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
) -> None:
    """Train a model on text files and save it in the store; Ctrl-C saves it to --resume."""
    settings = {
        FIELD_OF.get(name, name): value
        for name, value in ctx.params.items()
        if name not in ("files", "model", "json_out")
    }
    given = {FIELD_OF.get(name, name) for name in given_params(ctx)}
    if cutoffs is not None:
        settings["cutoffs"] = parse_cutoffs(cutoffs)
    if not files and not resume:
        raise BadInput("give the FILES to train on (- for stdin), or --resume an interrupted run")
    console = stderr_console()
    try:
        with TrainView(console) as view:
            result = api.train(
                files,
                model,
                on_progress=view.progress,
                on_epoch=view.epoch,
                on_retry=view.retry,
                on_start=view.start,
                given=given,
                **settings,
            )
    except SettingsDiffer as e:
        raise BadInput(settings_differ_in_flags(ctx, model, e)) from None
    except api.Interrupted as e:
        console.print(f"interrupted: {e}")
        if e.resumable:
            console.print(f"resume with: {resume_command()}")
        raise typer.Exit(e.exit_code) from None
    if continue_run:
        console.print(old_validation_line(result))
    if json_out:
        print_json(asdict(result))
    else:
        budget = f"; stopped by --max-time after {max_time:g} s" if result.stopped_by_budget else ""
        console.print(
            f"saved {result.model} ({result.path}): valid ppl {result.valid_ppl:.2f}, "
            f"{result.epochs} epochs, {result.seconds:.0f} s{budget}"
        )


def parse_cutoffs(text: str) -> list[int]:
    """--cutoffs as a list of numbers: "2000,10000"; "" or "none" for none."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise BadInput(
            f"--cutoffs takes whole numbers separated by commas, such as 2000,10000, not {text!r}"
        ) from None


def given_params(ctx) -> set[str]:
    """The names of the command's parameters that the user gave, rather than defaulted
    (sources known by name: typer may vendor click, with its own enum)."""
    given = {"COMMANDLINE", "ENVIRONMENT", "PROMPT"}
    sources = {p.name: ctx.get_parameter_source(p.name) for p in ctx.command.params}
    return {name for name, source in sources.items() if getattr(source, "name", None) in given}


def settings_differ_in_flags(ctx, model: str, e: "SettingsDiffer") -> str:
    """The settings a resumed run does not share with the interrupted one, in the user's
    words: `--hidden 32 (the run used 16)`, all of them."""
    params = {p.name: p for p in ctx.command.params}
    listed = []
    for d in e.differences:
        param = params.get(d.field)
        saved = flag_words(param, d.field, d.saved)
        if d.saved in (None, "auto"):
            was = "the run used the default"
        elif saved is None:
            was = "the run did not use it"
        elif isinstance(d.saved, bool):
            was = f"the run used {saved}"
        else:
            was = f"the run used {value_text(d.saved)}"
        listed.append(f"{flag_words(param, d.field, d.given)} ({was})")
    return f"cannot resume {model}: {', '.join(listed)}; leave them out to use the run's own"


def flag_words(param, field: str, value) -> str | None:
    """How a user gives `value` of the setting `field`: `--hidden 32`, `--no-tied`; None for
    false of a flag that has no off form (`--lowercase`)."""
    if param is None:  # a setting without a flag
        return f"{field} {value_text(value)}"
    if getattr(param, "is_flag", False) and isinstance(value, bool):
        names = param.opts if value else param.secondary_opts
        return names[0] if names else None
    return f"{max(param.opts, key=len)} {value_text(value)}"


def value_text(value) -> str:
    """A flag's value as a user types it (20.0 as 20, [2000, 10000] as 2000,10000)."""
    if isinstance(value, list):
        return ",".join(map(value_text, value)) or "none"
    return format(value, "g") if isinstance(value, float) else str(value)


def old_validation_line(result) -> str:
    """What a continued run did to the old validation text's perplexity (forgetting)."""
    before, after = result.old_valid_ppl_before, result.old_valid_ppl_after
    if after is None:
        known = "" if before is None else f" (ppl {before:.2f} before)"
        return f"old validation: {result.old_valid}{known}; only the new validation is reported"
    return f"old validation ({result.old_valid}): ppl {before:.2f} before, {after:.2f} after"


def adaptive_words(arch: dict) -> str:
    """How `show` names an adaptive softmax: ", adaptive softmax (cut-offs 2000, 10000; div
    4)"; nothing for the full softmax."""
    if arch.get("softmax") != "adaptive":
        return ""
    cutoffs = ", ".join(map(str, arch.get("cutoffs") or [])) or "none"
    return f", adaptive softmax (cut-offs {cutoffs}; div {arch.get('div_value')})"


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour, rounded up (a time left never shows 0:00
    while time is left)."""
    m, s = divmod(math.ceil(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def resume_command() -> str:
    """This command line as the user can paste it to resume: the same arguments + --resume
    (less --force, which has done its job)."""
    import shlex

    args = [arg for arg in sys.argv[1:] if arg != "--force"]
    return shlex.join(["wordlstm", *args, *([] if "--resume" in args else ["--resume"])])


class TrainView:
    """Renders training: a start line, a live progress bar on a terminal, one line per epoch
    always. The bar's share done and time left are of the epochs or of the --max-time
    budget, whichever ends the run first."""

    def __init__(self, console) -> None:
        self.console = console
        self.epochs = 1  # and the budget, both set by start()
        self.max_time: float | None = None
        self.bar = None
        self.began = time.monotonic()  # reset by start(), when training begins
        self.first: tuple[float, int] | None = None  # (time, steps done) at the first step

    def __enter__(self) -> "TrainView":
        if show_progress(self.console):
            from rich.progress import BarColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                TextColumn(
                    "{task.fields[speed]:,.0f} tok/s  loss {task.fields[loss]:.3f}"
                    "  ppl {task.fields[ppl]:.1f}"
                ),
                TextColumn("{task.fields[left]} left"),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                "train",
                total=1,
                epoch=1,
                epochs=self.epochs,
                speed=0.0,
                loss=0.0,
                ppl=0.0,
                left="-:--",
            )
        return self

    def start(self, s) -> None:
        """The start line: what the run trains on; the budget's clock starts here."""
        self.began = time.monotonic()
        self.epochs, self.max_time = s.epochs, s.max_time
        if self.bar is not None:
            self.bar.update(self.task, epochs=s.epochs)
        read = f"{s.valid_tokens:,}"
        if s.validated_tokens < s.valid_tokens:
            read = f"{s.validated_tokens:,} of {read}"
        self.console.print(
            f"vocabulary {s.vocab:,} words | training {s.train_tokens:,} tokens | "
            f"validation {read} tokens | {s.params:,} parameters"
        )

    def time_left(self, done: int, total: int) -> tuple[float, float | None]:
        """(share done, seconds left) of the run: by the steps' pace over all epochs, or by
        the budget if that ends sooner; seconds left is None until the pace is known."""
        now = time.monotonic()
        share, left = done / total, None
        if self.first is None:
            self.first = (now, done)
        elif done > self.first[1]:
            pace = (now - self.first[0]) / (done - self.first[1])
            left = pace * (total - done)
        if self.max_time is not None:
            spent = now - self.began
            share = max(share, min(1.0, spent / self.max_time))
            budget_left = max(0.0, self.max_time - spent)
            left = budget_left if left is None else min(left, budget_left)
        return share, left

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def progress(self, p) -> None:
        if self.bar is not None:
            share, left = self.time_left((p.epoch - 1) * p.steps + p.step, p.steps * self.epochs)
            self.bar.update(  # one bar for the whole run, so the time left is the run's
                self.task,
                completed=share,
                epoch=p.epoch,
                speed=p.tokens_per_sec,
                loss=p.loss,
                ppl=math.exp(min(p.loss, 50)),
                left="-:--" if left is None else clock(left),
            )

    def retry(self, r) -> None:
        self.console.print(
            f"epoch {r.epoch:3d} | step {r.step}: {r.reason}; back to the start of the epoch"
            f" with lr {r.lr:g} (retry {r.retry} of {r.retries})"
        )

    def epoch(self, e) -> None:
        mark = "saved as best" if e.improved else "saved, near best" if e.saved else "not better"
        self.console.print(
            f"epoch {e.epoch:3d} | train ppl {e.train_ppl:9.2f} | valid ppl {e.valid_ppl:9.2f}"
            f" | lr {e.lr:g} | {e.seconds:6.1f} s | {e.tokens / e.seconds:8,.0f} tok/s"
            f"{threads_text(e.threads)} | {mark}"
        )


def threads_text(threads: int | None) -> str:
    """The epoch line's thread count (nothing where NumPy's BLAS is not OpenBLAS)."""
    if threads is None:
        return ""
    return f" | {threads} thread{'s' if threads > 1 else ''}"


@app.command(
    epilog=examples(
        'wordlstm complete "Last year, due to my job, I" --top 3',
        'wordlstm complete "The cat" --words 8 --sample --seed 1',
        "printf 'The cat\\nI like\\n' | wordlstm complete --json",
    )
)
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
    """The most likely next words after a prompt, and optionally a continuation.

    Prompts from stdin: each block starts with a line `> PROMPT`. Words the model does not
    know are named on stderr (and in --json's "unknown"); a word known only in another case
    (i, I) is read as the known one ("recased")."""
    options = api.CompleteOptions(
        top=top, words=words, sample=sample, temperature=temperature, seed=seed,
        partial=partial, beam=beam, top_k=top_k, top_p=top_p,
    )  # fmt: skip
    m = api.load(model)
    prompts = [argument_text(prompt)] if prompt is not None else api.read_lines(["-"])
    for n, c in enumerate(m.complete(prompts, options)):
        note = prompt_note(c)
        if note:
            where = "" if prompt is not None else f"line {n + 1}: "
            sys.stderr.write(f"{where}{note}\n")
            sys.stderr.flush()
        if json_out:
            print_json(
                {
                    "prompt": c.prompt,
                    "next": [{"word": w, "prob": p} for w, p in c.next],
                    "continuation": c.continuation,
                    "unknown": c.unknown,
                    "recased": c.recased,
                    "partial": c.fragment,
                    **beams_json(c.beams, beam),
                }
            )
            continue
        if n:
            sys.stdout.write("\n")
        if prompt is None:  # one block per stdin line: say whose block it is
            sys.stdout.write(f"> {c.prompt}\n")
        if beam:
            write_beams(c, beam)
        elif words:
            sys.stdout.write(c.continued + "\n")
        for word, p in c.next:
            sys.stdout.write(f"{word}\t{p:.4f}\n")
        sys.stdout.flush()


def argument_text(arg: str) -> str:
    """A command-line argument as text: bytes that were not UTF-8 (which Python keeps as
    lone surrogates) become U+FFFD, as in lines read from files."""
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def prompt_note(c) -> str:
    """What stderr says about a prompt's words: those the model does not know, and those
    read in another case ("" when there are none)."""
    parts = []
    if c.unknown:
        parts.append(f"unknown words: {', '.join(c.unknown)}")
    if c.recased:
        parts.append("read " + ", ".join(f"{a} as {b}" for a, b in c.recased.items()))
    return "; ".join(parts)


def beams_json(beams: list[tuple[str, float, bool, str]], width: int) -> dict:
    """The "beams" member of complete's JSON, present with --beam."""
    if not width:
        return {}
    return {"beams": [{"text": t, "log_prob": lp, "ended": e} for t, lp, e, _ in beams]}


def write_beams(c, width: int) -> None:
    """complete's text output with --beam: each continued prompt and its log-probability."""
    for _, lp, _, continued in c.beams:
        sys.stdout.write(f"{continued}\t{lp:.4f}\n")


@app.command(
    epilog=examples("wordlstm suggest", "wordlstm suggest --model notes --top 5 >> notes.txt")
)
def suggest(
    model: str = typer.Option("default", help=MODEL_HELP),
    top: int = typer.Option(3, help="how many suggestions to show, 1-9"),
) -> None:
    """Type with suggestions that follow every keystroke: Tab takes the highlighted one
    (Up/Down choose it), a digit takes that one, Enter prints the line to stdout and starts
    another, Ctrl-D prints what was typed and ends (exit 0), Ctrl-C ends (exit 130)."""
    if not 1 <= top <= 9:
        raise BadInput("--top must be 1 to 9 (the digit keys choose)")
    from wordlstm.suggest import run, terminal_output  # the interactive line's screen

    output = terminal_output()
    typing = api.load(model).typing(top)

    def write(line: str) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()

    raise typer.Exit(run(typing, write, output=output))


@app.command(
    epilog=examples(
        "wordlstm score notes.txt",
        'echo "The cat sat." | wordlstm score --per-token',
        "wordlstm score --continuous --json chapter.txt",
    )
)
def score(
    files: list[str] = typer.Argument(None, help="text files to score (default: stdin)"),
    model: str = typer.Option("default", help=MODEL_HELP),
    continuous: bool = typer.Option(
        False, "--continuous", help="carry the state from line to line, as in a document"
    ),
    per_token: bool = typer.Option(
        False,
        "--per-token",
        help="each token's log p: with --json a token_log_probs list; else one line per input "
        "line of tab-separated `token=id log_p` and then `Total: LOG_P OOV: UNKNOWN`",
    ),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per line"),
    color: bool = typer.Option(
        False,
        "--color",
        help="print each line (after its ppl) with its tokens coloured by the rank the model "
        "gave them: top 1, top 10, top 100, beyond (a legend goes to stderr)",
    ),
    threads: int = typer.Option(None, help=THREADS_HELP + ", else all cores]"),
) -> None:
    """Log-probability and perplexity of each input line: ppl, log_prob, tokens, text."""
    if color and (json_out or per_token):
        raise BadInput("--color shows the ranks itself: leave out --json and --per-token")
    if threads is not None:
        api.use_threads(threads)
    m = api.load(model)
    lines = api.read_lines(files or ["-"])
    totals = api.ScoreTotals()
    if color:
        from wordlstm.render_rank import RankView  # presentation, as suggest's screen

        view = RankView(no_color())
        stderr_console().print(view.legend())
        per_token = True
    interrupted = False
    try:
        for s in m.score(lines, continuous=continuous, per_token=per_token):
            totals.add(s)
            if json_out:
                obj = {"text": s.text, "tokens": s.tokens, "log_prob": s.log_prob, "ppl": s.ppl}
                if per_token:
                    obj["token_log_probs"] = [asdict(t) for t in s.token_scores]
                print_json(obj)
            elif color:
                view.print(s, m.token_texts(t.id for t in s.token_scores))
            elif per_token:
                sys.stdout.write(per_token_line(s) + "\n")
                sys.stdout.flush()
            else:
                sys.stdout.write(f"{s.ppl:.2f}\t{s.log_prob:.4f}\t{s.tokens}\t{s.text}\n")
                sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C: the lines scored so far are out; sum them up
        interrupted = True
    stderr_console().print(
        f"tokens {totals.tokens} | unknown {totals.unknown} ({100 * totals.unknown_share:.2f}%)"
        f" | perplexity {totals.ppl:.2f}"
    )
    if interrupted:
        raise typer.Exit(130)


def per_token_line(s) -> str:
    """A scored line token by token, as KenLM's query prints it: `token=id log_p` for each
    token (natural log, the end-of-line token last), tab-separated, then the line's total
    and its count of unknown words."""
    tokens = "\t".join(f"{t.token}={t.id} {t.log_prob:.4f}" for t in s.token_scores)
    return f"{tokens}\tTotal: {s.log_prob:.4f} OOV: {s.unknown}"


@app.command(
    "eval",
    epilog=examples(
        "wordlstm eval ptb.test.txt --model ptb",
        "wordlstm eval held-out.txt --json",
    ),
)
def evaluate(
    file: str = typer.Argument(..., help="the text to evaluate on"),
    model: str = typer.Option("default", help=MODEL_HELP),
    batch_size: int = typer.Option(10, help="parallel streams (10, as the PyTorch example)"),
    bptt: int = typer.Option(35, help="steps per chunk; the state carries across chunks"),
    json_out: bool = typer.Option(False, "--json", help="print the figures as JSON"),
    keyboard: bool = typer.Option(
        True, "--keyboard/--no-keyboard", help="also the keystroke savings and top-3 of words"
    ),
    cache_size: int = typer.Option(
        api.CACHE_SIZE,
        help="the word cache: the model's last N states and the words after them, kept per "
        "stream and mixed into the prediction as far as they help; 0 = the model alone",
    ),
    threads: int = typer.Option(None, help=THREADS_HELP + ", else all cores]"),
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
    if threads is not None:
        api.use_threads(threads)
    m = api.load(model)
    with TokenProgress(stderr_console(), "eval") as progress:
        r = m.evaluate(
            file,
            batch_size=batch_size,
            bptt=bptt,
            keyboard=keyboard,
            cache_size=cache_size,
            on_progress=progress.update,
        )
    if json_out:
        print_json(r.to_dict())
        return
    rows = [
        ("perplexity", f"{r.perplexity:.2f}"),
        *([("without the word cache", f"{r.model_perplexity:.2f}")] if r.cache_size else []),
        ("top-1 accuracy", f"{100 * r.top1:.2f}%"),
        ("top-5 accuracy", f"{100 * r.top5:.2f}%"),
        ("top-1 / top-5 of words", f"{100 * r.top1_words:.2f}% / {100 * r.top5_words:.2f}%"),
        ("tokens", f"{r.tokens:,}"),
        ("unknown rate", f"{100 * r.unknown_rate:.2f}%"),
    ]
    if keyboard:
        rows += [
            ("keystroke savings", f"{100 * r.keystroke_savings:.2f}%"),
            ("top-3 of words typed", f"{100 * r.top3_words:.2f}%"),
        ]
    width = max(len(name) for name, _ in rows)
    sys.stdout.write("".join(f"{name:<{width}}  {value}\n" for name, value in rows))


class TokenProgress:
    """A progress bar of tokens done on a terminal (transient: gone at the end); nothing
    elsewhere."""

    def __init__(self, console, label: str) -> None:
        self.console, self.label = console, label
        self.bar = None

    def __enter__(self) -> "TokenProgress":
        if show_progress(self.console):
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=None, count="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task, completed=done, total=total, count=f"{done:,}/{total:,} tokens"
            )


@models_app.callback()
def models(
    ctx: typer.Context,
    json_out: bool = typer.Option(
        False, "--json", help="a JSON list: the columns' fields, path, size in bytes, problem"
    ),
) -> None:
    """The models in the store: a table on a terminal, tab-separated columns under a header
    line elsewhere (for awk and cut). Folders that are not loadable models are listed with
    status `broken`."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [asdict(row) for row in api.models()]
    if json_out:
        print_json(rows)
    elif not rows:
        stderr_console().print(f"no models in {api.store_home()}")
    elif sys.stdout.isatty():
        print_models_table(rows)
    else:
        sys.stdout.write("\t".join(MODEL_COLUMNS) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(model_cells(row, human=False)) + "\n")


MODEL_COLUMNS = (
    "name",
    "vocab",
    "layers_x_hidden",
    "params",
    "valid_ppl",
    "tokens",
    "size",
    "saved",
    "status",
)


def model_cells(row: dict, human: bool) -> list[str]:
    """A row of `models` as the cells of MODEL_COLUMNS: for people (thousands separators,
    sizes in kB/MB) or for programs (plain numbers, bytes, ISO dates); never empty and never
    with a space inside, so that awk splits them."""

    def number(value, style: str) -> str:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return format(value, style) if ok else "-"

    arch = f"{row['layers']}x{row['hidden']}" if row["layers"] and row["hidden"] else "-"
    saved = str(row["saved"] or "-")
    cells = [
        row["name"],
        number(row["vocab"], ",d" if human else "d"),
        arch,
        number(row["params"], ",d" if human else "d"),
        number(row["valid_ppl"], ".2f"),
        number(row["tokens"], ",d" if human else "d"),
        human_size(row["size"]) if human else str(row["size"]),
        saved[:16].replace("T", " ") if human else saved,
        row["status"],
    ]
    return cells if human else ["".join(cell.split()) or "-" for cell in cells]


def human_size(size: int) -> str:
    """Bytes as B, kB, MB or GB (powers of 1000), as people read sizes on disk."""
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def print_models_table(rows: list[dict]) -> None:
    """The rows of `models` as a table for a terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in MODEL_COLUMNS:
        table.add_column(column.replace("_", " "), no_wrap=True)
    for row in rows:
        table.add_row(*model_cells(row, human=True))
    console = Console(no_color=no_color(), highlight=False)
    # wider than a narrow terminal rather than cells cut short
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    console.width = max(console.width, natural)
    console.print(table)


@models_app.command(
    "show", epilog=examples("wordlstm models show default", "wordlstm models show ptb --json")
)
def models_show(
    name: str = typer.Argument(..., help=MODEL_HELP),
    json_out: bool = typer.Option(False, "--json", help="print config.json as is"),
    png: str = typer.Option(
        None,
        "--png",
        help="also write the learning curve as a PNG here: train blue, valid orange, lr "
        "changes dashed yellow, the start of averaging dashed green",
    ),
) -> None:
    """Everything config.json records about a model, and its learning curve: train and
    validation perplexity per epoch, learning-rate changes and the start of averaging."""
    from wordlstm import render_curve  # presentation, as suggest's screen

    details = api.show(name)
    config = details.config
    if png is not None:
        write_bytes(png, render_curve.picture(details.curve))
    if json_out:
        print_json(config)
        return
    arch = config["architecture"]
    lines = [
        f"name          {name}",
        f"path          {details.path}",
        f"saved         {config.get('saved', '?')}",
        f"architecture  embed {arch['embed']}, {arch['layers']} x {arch['hidden']} LSTM, "
        f"vocabulary {arch['vocab']:,}{', tied' if arch.get('tied') else ''}{adaptive_words(arch)}"
        f", dropout {config.get('dropout')}",
        f"parameters    {details.params:,}",
        f"tokenizer     {json.dumps(config.get('tokenizer', {}))}",
        f"recipe        {json.dumps(config.get('recipe', {}))}",
        f"metrics       {json.dumps(config.get('metrics', {}))}",
    ]
    unfinished = ", before its first epoch ended" if config.get("unfinished") else ""
    lines.append(f"status        {details.status}{unfinished}")
    if details.resume_command:
        lines.append(f"resume with   {details.resume_command}")
    for e in config.get("history", []):
        lines.append(
            f"  epoch {e['epoch']:3d}  train ppl {e['train_ppl']:9.2f}  valid ppl "
            f"{e['valid_ppl']:9.2f}  lr {e['lr']:g}  {e['seconds']:.1f} s"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if config.get("history"):
        from rich.console import Console

        sys.stdout.write("\nlearning curve (perplexity, log scale)\n")
        sys.stdout.flush()
        curve = render_curve.text(details.curve)
        Console(no_color=no_color(), highlight=False, soft_wrap=True).print(curve, end="")


@models_app.command("rm", epilog=examples("wordlstm models rm old-run"))
def models_rm(name: str = typer.Argument(..., help=MODEL_HELP)) -> None:
    """Delete a model from the store."""
    path = api.remove(name)
    stderr_console().print(f"removed {name} ({path})")


@app.command(
    epilog=examples(
        'wordlstm explain "Last year, due to my job, I"',
        'wordlstm explain "Today, due to my job, I" --why need --against had',
        'wordlstm explain "The cat" --units 4 --html cat.html',
    )
)
def explain(
    prompt: str = typer.Argument(..., help="the text whose reading to show"),
    model: str = typer.Option("default", help=MODEL_HELP),
    units: int = typer.Option(4, help="also show the cell state of the K units that change most"),
    why: str = typer.Option(None, help="how much each token moved log p(WORD) after the prompt"),
    against: str = typer.Option(None, help="with --why: attribute log p(WORD) - log p(OTHER)"),
    json_out: bool = typer.Option(False, "--json", help="every gate per token, unit and layer"),
    html_file: str = typer.Option(None, "--html", help="also write the page to this file"),
) -> None:
    """The LSTM reading a prompt: per token and layer the mean forget, input and output
    gates and the cell-state norm (a heat map), what carried the memory (per unit the
    half-life from the forget gate), and the next words; --why: which tokens moved a word's
    probability, by gradient x input through the hand-written backward and by occlusion."""
    if against is not None and why is None:
        raise BadInput("--against needs --why, the word to compare it with")
    from wordlstm import render_explain as render  # presentation, as suggest's screen

    m = api.load(model)
    text = argument_text(prompt)
    e = m.explain(text, units=units)
    if e.unknown:
        stderr_console().print(f"unknown words: {', '.join(e.unknown)}")
    attribution = None if why is None else m.attribute(text, why, other=against)
    if html_file is not None:
        write_text(html_file, render.page(e, attribution))
    if json_out:
        print_json(render.as_json(e, attribution))
        return
    from rich.console import Console

    render.terminal(e, attribution, Console(no_color=no_color(), highlight=False, soft_wrap=True))


def write_text(path: str, text: str) -> None:
    """Writes a text file the user named; an OS error as one line."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str, data: bytes) -> None:
    """Writes a file the user named; an OS error as one line."""
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise BadInput(f"cannot write {path}: {e.strerror}") from None


@app.command(
    epilog=examples(
        "wordlstm gradcheck", "wordlstm gradcheck --tied", "wordlstm gradcheck --softmax adaptive"
    )
)
def gradcheck(
    tied: bool = typer.Option(False, "--tied", help="check a model with tied weights"),
    softmax: str = typer.Option("full", help="check a model with this softmax: full or adaptive"),
) -> None:
    """Checks the hand-written backward pass here: on a tiny float64 model with every
    regulariser on, each parameter's gradient against central finite differences over two
    BPTT chunks; prints per parameter the largest relative error. Exit 1 on a failure."""
    checks = api.check_gradients(tied=tied, softmax=softmax)
    width = max(len(c.name) for c in checks)
    for c in checks:
        verdict = "PASS" if c.passed else "FAIL"
        sys.stdout.write(f"{c.name:<{width}}  {c.size:4d}  {c.error:9.2e}  {verdict}\n")
    failed = [c.name for c in checks if not c.passed]
    if failed:
        sys.stdout.flush()
        raise api.RunFailure(
            f"the backward pass disagrees with finite differences for {', '.join(failed)}"
        )
    sys.stdout.write(f"all {len(checks)} parameters within {checks[0].tolerance:g}\n")


def main() -> None:
    """Runs the CLI: errors become one `error:` line and an exit code (2 bad input,
    1 run-time failure, 130 interrupted); WORDLSTM_DEBUG=1 shows tracebacks."""
    debug = os.environ.get("WORDLSTM_DEBUG") == "1"
    api.keep_freed_memory()
    try:
        code = app(standalone_mode=False)
    except WordlstmError as e:
        fail(message(e), e.exit_code, debug)
    except KeyboardInterrupt:
        code = 130
    except MemoryError:
        fail("out of memory", 1, debug)
    except OSError as e:
        fail(f"{api.first_line(e)}{f': {e.filename}' if e.filename else ''}", 1, debug)
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
