"""`score --color`: a line's tokens coloured by the rank the model gave each one, as GLTR
(Gehrmann et al. 2019) shows how predictable a text is: the model's first choice, one of
its top 10, top 100, or beyond."""

# (highest rank in the band, colour, its name in the legend); ranks count from 0
BANDS = ((0, "green", "top 1"), (9, "yellow", "top 10"), (99, "red", "top 100"))
BEYOND = ("magenta", "beyond")


def band(rank: int) -> tuple[str, str]:
    """The colour and name of a rank's band."""
    for top, colour, name in BANDS:
        if rank <= top:
            return colour, name
    return BEYOND


class RankView:
    """Prints scored lines to stdout, colour on a terminal (or with FORCE_COLOR), plain
    text elsewhere or with NO_COLOR."""

    def __init__(self, no_color: bool) -> None:
        from rich.console import Console

        self.console = Console(no_color=no_color, highlight=False, soft_wrap=True)

    def legend(self):
        """The colours and their bands, coloured themselves (for stderr)."""
        from rich.text import Text

        legend = Text("rank of each token: ")
        for colour, name in [(c, n) for _, c, n in BANDS] + [BEYOND]:
            legend.append(name, style=f"black on {colour}")
            legend.append(" ")
        return legend

    def print(self, s, texts: list[str]) -> None:
        """A line's perplexity, a tab, and its tokens, each on its band's colour: `texts` are
        the tokens' texts as the tokenizer spaces them ("" for the end-of-line token)."""
        from rich.text import Text

        line = Text()
        for t, piece in zip(s.token_scores, texts, strict=True):
            space = len(piece) - len(piece.lstrip(" "))
            line.append(piece[:space])
            if piece[space:]:
                line.append(piece[space:], style=f"black on {band(t.rank)[0]}")
        self.console.file.write(f"{s.ppl:.2f}\t")  # a real tab: rich would expand one
        self.console.print(line)
