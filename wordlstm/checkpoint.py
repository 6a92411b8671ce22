"""A trained model as a store folder: LanguageModel + Tokenizer + facts <-> config.json,
tokenizer.json and model.safetensors, with every cross-check a loader needs."""

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from wordlstm import __version__, store
from wordlstm.backend import to_host
from wordlstm.errors import BadInput
from wordlstm.model import Architecture, LanguageModel
from wordlstm.tokenizer import Tokenizer


@dataclass
class Loaded:
    """A model ready to predict, with its tokenizer and config."""

    path: Path
    model: LanguageModel
    tokenizer: Tokenizer
    config: dict


def save_model(
    path: Path,
    model: LanguageModel,
    tokenizer: Tokenizer,
    facts: dict,
    *,
    weights: dict | None = None,
    extra: dict[str, bytes] | None = None,
) -> None:
    """Saves atomically; facts (recipe, tokenizer settings, metrics, history) go into
    config.json beside the architecture. `weights` (in the layout of `model.weights()`)
    replace the model's current ones, e.g. the best so far; `extra` files go along."""
    config = {
        "format_version": store.FORMAT_VERSION,
        "wordlstm_version": __version__,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": model.arch.to_dict(),
        "dropout": model.dropout,
        **facts,
    }
    if weights is None:
        weights = model.weights()
    weights = {n: to_host(a) for n, a in weights.items()}
    store.save(path, config=config, tokenizer_json=tokenizer.to_str(), weights=weights, extra=extra)


def load_model(model: str) -> Loaded:
    """Loads a model by store name or folder path, checking that config, tokenizer and
    weights agree."""
    path = store.resolve(model)
    config, tokenizer_json, weights = store.load(path)
    try:
        arch = Architecture(**config["architecture"])
        sizes = (arch.vocab, arch.embed, arch.hidden, arch.layers, *arch.cutoffs)
        if any(type(n) is not int for n in sizes) or type(arch.tied) is not bool:
            raise TypeError("sizes must be whole numbers and tied true or false")
        if type(arch.div_value) not in (int, float):
            raise TypeError("div_value must be a number")
    except (KeyError, TypeError) as e:
        raise BadInput(f"{path / 'config.json'}: bad or missing architecture ({e})") from None
    if 4 * arch.layers > len(weights):  # before anything loops over a hostile number of layers
        raise BadInput(
            f"{path}: config.json gives {arch.layers} layers, more than its weights hold"
        )
    tokenizer = Tokenizer.from_str(tokenizer_json, str(path / store.TOKENIZER))
    if tokenizer.vocab_size != arch.vocab:
        raise BadInput(
            f"{path}: tokenizer.json has {tokenizer.vocab_size} words but the weights "
            f"expect {arch.vocab}"
        )
    return Loaded(path, LanguageModel.from_weights(arch, weights), tokenizer, config)
