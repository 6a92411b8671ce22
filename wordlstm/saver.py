"""The save callback of training: after each epoch (and when stopped), the model folder with
the best weights so far and the state to resume from."""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wordlstm import store
from wordlstm.backend import to_host
from wordlstm.checkpoint import save_model
from wordlstm.model import LanguageModel
from wordlstm.resume import Saved, state_files
from wordlstm.tokenizer import Tokenizer
from wordlstm.training import Epoch, TrainState

PENDING = "pending_run"  # in config.json: the folder keeps its model for a newer run whose
# state training.json holds and which has no validated epoch yet


@dataclass
class Kept:
    """The model files a run leaves in its folder until it has a validated epoch."""

    config: dict
    tokenizer_json: str
    weights: dict[str, np.ndarray]


class Saver:
    """What `train` calls to save: the model folder with the best weights so far, or later
    ones near them (`Epoch.saved`; until an epoch is validated, the current ones, marked
    unfinished; with `hold`, nothing; with `keep`, the kept model marked PENDING beside this
    run's state), and the state to resume from. When the time budget ended the run,
    config.json says so (`ended`), to tell it from a stopped run."""

    def __init__(
        self,
        path: Path,
        model: LanguageModel,
        tokenizer: Tokenizer,
        facts: dict,
        fingerprint: dict,
        *,
        hold: bool = False,
        keep: Kept | None = None,
    ) -> None:
        self.path, self.model, self.tokenizer = path, model, tokenizer
        self.facts, self.fingerprint = facts, fingerprint
        self.hold, self.keep = hold, keep
        self.best: dict | None = None  # the metrics of the best weights
        self.best_weights: dict | None = None
        self.history: list[Epoch] = []
        self.state: TrainState | None = None  # the last one given
        self.written = False  # whether the folder holds a save of this run
        self.out_of_time = False  # whether the time budget ended the run

    def resume_from(self, saved: Saved) -> None:
        """Takes the best weights and history of the folder being resumed."""
        self.state = saved.state
        self.history = saved.state.history
        self.written = True
        if not (saved.config.get("unfinished") or saved.config.get(PENDING)):
            self.best, self.best_weights = saved.config["metrics"], saved.weights

    def __call__(self, state: TrainState, result: Epoch | None) -> None:
        """Saves the folder for `state`; `result` is the validation just done, if any."""
        partial = result is not None and result.epoch == state.epoch  # validated out of time
        self.out_of_time |= partial
        self.history = [*state.history, *([result] if partial else [])]
        if result is not None and result.saved:
            self.best_weights = {n: np.array(to_host(a)) for n, a in self.model.weights().items()}
            self.best = {
                "epoch": result.epoch,
                "valid_ppl": result.valid_ppl,
                "train_ppl": result.train_ppl,
                "trained_tokens": sum(e.tokens for e in self.history),
            }
        self.state = state
        if self.best is None and self.hold:
            return
        if self.best is None and self.keep is not None:
            kept = self.keep
            store.save(
                self.path,
                config={**kept.config, PENDING: True},
                tokenizer_json=kept.tokenizer_json,
                weights=kept.weights,
                extra=state_files(state, self.fingerprint),
            )
            self.written = True
            return
        self.keep = None  # replaced by validated weights for good
        facts = {**self.facts, "history": [asdict(e) for e in self.history]}
        if self.best is None:
            facts["unfinished"] = True
        else:
            facts["metrics"] = self.best
        if self.out_of_time:
            facts["ended"] = "time budget"
        save_model(
            self.path,
            self.model,
            self.tokenizer,
            facts,
            weights=self.best_weights,
            extra=state_files(state, self.fingerprint),
        )
        self.written = True

    def ran_out_of_time(self) -> None:
        """Records in the folder that the time budget ended the run, if its last save did not
        (the budget ran out between an epoch's save and the next one's first step)."""
        if self.written and not self.out_of_time:
            self.out_of_time = True
            self(self.state, None)
