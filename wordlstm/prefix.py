"""The vocabulary's words by prefix: which words may complete the word being typed.

The rule, case as the user types it: the words that start with the typed fragment exactly;
only if there are none, the words that start with it when both are lowercased (so "Ha"
offers "Had" where the vocabulary has it, and "had" where only that exists, as in a model
trained with lowercasing). Special tokens are never offered. Built once per vocabulary:
two sorted lists, so a lookup is two binary searches and a slice, never a scan.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

import numpy as np


class PrefixIndex:
    """Word ids by prefix over a vocabulary given as its words in id order."""

    def __init__(self, words: Sequence[str], exclude: Iterable[int] = ()) -> None:
        skip = set(exclude)
        ids = [i for i in range(len(words)) if i not in skip]
        lowered = [w.lower() for w in words]
        exact = sorted(ids, key=words.__getitem__)
        folded = sorted(ids, key=lowered.__getitem__)
        self._exact_keys = [words[i] for i in exact]
        self._exact_ids = np.array(exact, dtype=np.int64)
        self._folded_keys = [lowered[i] for i in folded]
        self._folded_ids = np.array(folded, dtype=np.int64)

    def exact(self, fragment: str) -> np.ndarray:
        """Ids of the words that start with fragment, case as given (sorted by word)."""
        return self._exact_ids[_span(self._exact_keys, fragment)]

    def folded(self, fragment: str) -> np.ndarray:
        """Ids of the words that start with fragment when both are lowercased."""
        return self._folded_ids[_span(self._folded_keys, fragment.lower())]

    def matches(self, fragment: str) -> np.ndarray:
        """The ids the rule offers for a fragment: exact matches, else lowercased ones."""
        found = self.exact(fragment)
        return found if len(found) else self.folded(fragment)


def _span(keys: list[str], prefix: str) -> slice:
    """The slice of a sorted list whose strings start with prefix. Cutting every string to
    the prefix's length keeps the list sorted, so the end is a binary search too."""
    lo = bisect_left(keys, prefix)
    hi = bisect_right(keys, prefix, lo, key=lambda w: w[: len(prefix)])
    return slice(lo, hi)
