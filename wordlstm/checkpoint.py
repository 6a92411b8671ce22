"""A trained model as a store folder: LanguageModel + Tokenizer + facts <-> config.json,
tokenizer.json and weights.npz, with every cross-check a loader needs."""

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


def save_model(path: Path, model: LanguageModel, tokenizer: Tokenizer, facts: dict) -> None:
    """Saves atomically; facts (recipe, tokenizer settings, metrics, history) go into
    config.json beside the architecture."""
    config = {
        "format_version": store.FORMAT_VERSION,
        "wordlstm_version": __version__,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": model.arch.to_dict(),
        "dropout": model.dropout,
        **facts,
    }
    weights = {n: to_host(a) for n, a in model.weights().items()}
    store.save(path, config=config, tokenizer_json=tokenizer.to_str(), weights=weights)


def load_model(model: str) -> Loaded:
    """Loads a model by store name or folder path, checking that config, tokenizer and
    weights agree."""
    path = store.resolve(model)
    config, tokenizer_json, weights = store.load(path)
    try:
        arch = Architecture(**config["architecture"])
    except (KeyError, TypeError) as e:
        raise BadInput(f"{path / 'config.json'}: bad or missing architecture ({e})") from None
    tokenizer = Tokenizer.from_str(tokenizer_json, str(path / store.TOKENIZER))
    if tokenizer.vocab_size != arch.vocab:
        raise BadInput(
            f"{path}: tokenizer.json has {tokenizer.vocab_size} words but the weights "
            f"expect {arch.vocab}"
        )
    return Loaded(path, LanguageModel.from_weights(arch, weights), tokenizer, config)
