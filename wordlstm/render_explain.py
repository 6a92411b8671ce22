"""What `explain` shows: the gate heat map and the attribution bars in a terminal (rich), as
JSON, and as a self-contained HTML page (inline CSS, no script, nothing fetched)."""

import html
import math

import numpy as np

from wordlstm.explain import Attribution, Explanation

# Viridis at five stops: dark for 0, bright for 1; readable in colour and in grey.
PALETTE = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
BAR = 8  # characters of the longest attribution bar
MEMORY_ROWS = 5  # units listed under "what carried the memory"


def colour(value: float) -> tuple[int, int, int]:
    """The palette's colour for a value in [0, 1] (clipped), linearly between its stops."""
    x = min(1.0, max(0.0, value)) * (len(PALETTE) - 1)
    k = min(int(x), len(PALETTE) - 2)
    a, b, t = PALETTE[k], PALETTE[k + 1], x - k
    return tuple(round(p + (q - p) * t) for p, q in zip(a, b, strict=True))


def ink(rgb: tuple[int, int, int]) -> str:
    """Black or white, whichever reads on the background rgb."""
    r, g, b = rgb
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"


def columns(e: Explanation) -> list[tuple[str, np.ndarray, float]]:
    """The heat map's columns: (heading, value per token, the value shown brightest), per
    layer its mean forget, input and output gate and its cell-state norm."""
    cols = []
    norm_top = max(float(layer.cell_norm.max()) for layer in e.layers) or 1.0
    for k, layer in enumerate(e.layers):
        cols += [
            (f"f{k}", layer.f.mean(axis=1), 1.0),
            (f"i{k}", layer.i.mean(axis=1), 1.0),
            (f"o{k}", layer.o.mean(axis=1), 1.0),
            (f"|c|{k}", layer.cell_norm, norm_top),
        ]
    for u in e.changing:
        c = e.layers[u.layer].c[:, u.unit]
        cols.append((f"c{u.layer}.{u.unit}", c, 1.0))
    return cols


def scaled(value: float, top: float, signed: bool) -> float:
    """A value as a palette position: [0, top] -> [0, 1], or if signed (a cell state)
    tanh(value) in [-1, 1] -> [0, 1]."""
    return (math.tanh(value) + 1.0) / 2.0 if signed else value / top


def bar(value: float, top: float) -> str:
    """A bar of up to BAR characters, + to the right, - to the left of a centre line."""
    n = round(BAR * abs(value) / top) if top > 0 else 0
    left, right = (" " * (BAR - n) + "█" * n, " " * BAR) if value < 0 else (" " * BAR, "█" * n)
    return f"{left}│{right.ljust(BAR)}"


def terminal(e: Explanation, why: Attribution | None, console) -> None:
    """Prints the heat map (rows: tokens; columns: gates and cell norm per layer, then the
    changing units' cell states), the attribution bars beside the tokens, what carried the
    memory and the next words."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, padding=(0, 1))
    table.add_column("token", no_wrap=True)
    cols = columns(e)
    for name, _, _ in cols:
        table.add_column(name, justify="right", no_wrap=True)
    if why is not None:
        table.add_column("gradient x input", no_wrap=True)
        table.add_column("occlusion", no_wrap=True)
        top_g = float(np.abs(why.gradient_x_input).max())
        top_o = float(np.abs(why.occlusion).max())
    for t, token in enumerate(e.tokens):
        cells = [Text(token)]
        for name, values, top in cols:
            rgb = colour(scaled(float(values[t]), top, name.startswith("c")))
            style = f"{ink(rgb)} on rgb({rgb[0]},{rgb[1]},{rgb[2]})"
            cells.append(Text(f"{values[t]:5.2f}", style=style))
        if why is not None:
            g, o = float(why.gradient_x_input[t]), float(why.occlusion[t])
            cells.append(Text(f"{bar(g, top_g)} {g:+.2f}", style="green" if g >= 0 else "red"))
            cells.append(Text(f"{bar(o, top_o)} {o:+.2f}", style="green" if o >= 0 else "red"))
        table.add_row(*cells)
    # wider than a narrow terminal rather than cells cut short
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    console.width = max(console.width, natural)
    console.print(table)
    console.print(legend(e))
    if why is not None:
        console.print(why_line(why))
    console.print("what carried the memory (units holding the earliest token at half):")
    for line in memory_lines(e):
        console.print(f"  {line}")
    console.print("next: " + "  ".join(f"{w} {p:.3f}" for w, p in e.next))


def legend(e: Explanation) -> str:
    """What the columns mean."""
    units = ", cL.U: layer L's unit U's cell state" if e.changing else ""
    return (
        "fL, iL, oL: layer L's mean forget, input and output gate; |c|L: its cell-state "
        f"norm{units}"
    )


def why_line(a: Attribution) -> str:
    """The attribution's target and its value."""
    against = f" - log p({a.other})" if a.other else ""
    return f"target log p({a.word}){against} = {a.target:+.3f}; bars: each token's share"


def memory_lines(e: Explanation) -> list[str]:
    """The units that hold the earliest token at half, as lines of text."""
    return [
        f"layer {m.layer} unit {m.unit}: tau {finite(m.time_constant)} tokens, half-life "
        f"{finite(m.half_life)}; holds {e.tokens[m.earliest]!r} (token {m.earliest + 1}) "
        f"at {m.kept:.2f}"
        for m in e.memory[:MEMORY_ROWS]
    ]


def finite(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "inf"


def as_json(e: Explanation, why: Attribution | None) -> dict:
    """Every array in full: per layer, each gate and state as [token][unit]."""

    def number(x: float) -> float | None:  # JSON has no inf
        return float(x) if math.isfinite(x) else None

    doc = {
        "prompt": e.prompt,
        "tokens": e.tokens,
        "ids": e.ids,
        "unknown": e.unknown,
        "layers": [
            {
                **{name: getattr(layer, name).tolist() for name in ("i", "f", "g", "o", "c", "h")},
                "mean_forget": layer.f.mean(axis=1).tolist(),
                "mean_input": layer.i.mean(axis=1).tolist(),
                "mean_output": layer.o.mean(axis=1).tolist(),
                "cell_norm": layer.cell_norm.tolist(),
            }
            for layer in e.layers
        ],
        "memory": [
            {
                "layer": m.layer,
                "unit": m.unit,
                "time_constant": number(m.time_constant),
                "half_life": number(m.half_life),
                "earliest": m.earliest,
                "kept": m.kept,
            }
            for m in e.memory
        ],
        "changing": [{"layer": u.layer, "unit": u.unit, "spread": u.spread} for u in e.changing],
        "next": [{"word": w, "prob": p} for w, p in e.next],
    }
    if why is not None:
        doc["why"] = {
            "word": why.word,
            "against": why.other,
            "target": why.target,
            "gradient_x_input": why.gradient_x_input.tolist(),
            "occlusion": why.occlusion.tolist(),
        }
    return doc


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; }
th { font: 12px monospace; padding: 2px 6px; text-align: center; }
td { font: 13px monospace; padding: 3px 6px; text-align: right; }
td.token { text-align: left; font-weight: bold; }
td.bar { text-align: left; width: 16em; }
.bar span { display: inline-block; height: 0.9em; vertical-align: middle; }
.pos { background: #2a9d4a; } .neg { background: #d1495b; }
.axis { border-left: 1px solid #888; }
p.note { color: #555; max-width: 50em; }
"""


def page(e: Explanation, why: Attribution | None) -> str:
    """A self-contained HTML page of the heat map, the attribution bars, what carried the
    memory and the next words."""
    cols = columns(e)
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _, _ in cols)
    if why is not None:
        head += "<th>gradient x input</th><th>occlusion</th>"
        top_g = float(np.abs(why.gradient_x_input).max())
        top_o = float(np.abs(why.occlusion).max())
    rows = []
    for t, token in enumerate(e.tokens):
        cells = [f'<td class="token">{html.escape(token)}</td>']
        for name, values, top in cols:
            rgb = colour(scaled(float(values[t]), top, name.startswith("c")))
            cells.append(
                f'<td style="background: rgb{rgb}; color: {ink(rgb)}">{values[t]:.2f}</td>'
            )
        if why is not None:
            cells.append(html_bar(float(why.gradient_x_input[t]), top_g))
            cells.append(html_bar(float(why.occlusion[t]), top_o))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    memory = "".join(f"<li>{html.escape(line)}</li>" for line in memory_lines(e))
    nxt = ", ".join(f"<b>{html.escape(w)}</b> {p:.3f}" for w, p in e.next)
    why_html = f'<p class="note">{html.escape(why_line(why))}</p>' if why else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>wordlstm explain: {html.escape(e.prompt)}</title>
<style>{CSS}</style></head>
<body>
<h1>{html.escape(e.prompt)}</h1>
<table><tr><th>token</th>{head}</tr>
{"".join(rows)}
</table>
<p class="note">{html.escape(legend(e))}</p>
{why_html}
<h2>What carried the memory</h2>
<ul>{memory}</ul>
<h2>Next words</h2>
<p>{nxt}</p>
</body></html>
"""


def html_bar(value: float, top: float) -> str:
    """A cell with a bar: negative to the left of the axis, positive to the right."""
    width = 6.0 * abs(value) / top if top > 0 else 0.0
    if value < 0:
        inner = (
            f'<span style="width: {6 - width:.2f}em"></span>'
            f'<span class="neg" style="width: {width:.2f}em"></span><span class="axis"></span>'
        )
    else:
        inner = (
            f'<span style="width: 6em"></span><span class="axis"></span>'
            f'<span class="pos" style="width: {width:.2f}em"></span>'
        )
    return f'<td class="bar">{inner} {value:+.2f}</td>'
