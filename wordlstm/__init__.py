"""wordlstm: a next-word predictor built on an LSTM language model written in NumPy.

    import wordlstm
    m = wordlstm.load("default")
    m.next_words("The cat sat on the", top=3)

The API is `wordlstm.api`'s; its names are reached from here when first used, so that
importing the package stays cheap.
"""

__version__ = "0.1.0"

_API = ("load", "train", "models", "show", "remove", "read_lines", "Model", "CompleteOptions")


def __getattr__(name: str):
    if name in _API:
        from wordlstm import api

        return getattr(api, name)
    raise AttributeError(f"module 'wordlstm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
