"""A small offline text corpus for character-level language models: Python's own help pages.

The corpus (``corpus/python-help.txt``, 465,048 characters, 96 distinct) is the text of the
interactive help topics that ship with CPython 3.11.7 (``pydoc_data.topics``, sorted by topic),
with the 8 characters that occur fewer than 20 times replaced by ``?``. It is English prose about
Python, with grammar rules and code examples: enough structure (words, keywords, indentation,
quotes, brackets) for a tiny model to learn features worth looking at. © Python Software
Foundation, distributed under the PSF License Agreement (see ``corpus/NOTICE``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

__all__ = ["CharText", "python_help"]

CORPUS = Path(__file__).parent / "corpus" / "python-help.txt"


@dataclasses.dataclass(repr=False)
class CharText:
    """A character-level corpus: its text, vocabulary, ids, split, and fixed windows for widgets.

    Attributes
    ----------
    text : str
        The whole corpus.
    vocab : list of str
        The characters, sorted; a character's id is its index here.
    ids : torch.Tensor, shape (len(text),), int64
        The corpus as ids.
    train_end : int
        Characters ``[0, train_end)`` are for training, the rest held out.
    context : int
        Window length the models read (their context).
    X : torch.Tensor, shape (n, context), int64
        Held-out windows (seeded), the inputs widgets show: ``FeatureLab(lens, inputs=data, ...)``.
    tokens : list of list of str
        The characters of each window of ``X`` (``tokens=`` for FeatureLab and FeatureDashboard).
    captions : list of str
        Each window as one string (``captions=``).
    """

    text: str
    vocab: list[str]
    ids: torch.Tensor
    train_end: int
    context: int
    X: torch.Tensor
    tokens: list[list[str]]
    captions: list[str]

    def encode(self, s: str) -> torch.Tensor:
        """The ids of ``s`` as a ``(1, len(s))`` int64 tensor (a batch of one, as models take it).

        Raises
        ------
        ValueError
            Characters outside the vocabulary (listed), or an empty string.
        """
        index = {ch: i for i, ch in enumerate(self.vocab)}
        unknown = sorted({ch for ch in s if ch not in index})
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown!r}; the corpus has {len(self.vocab)}")
        if not s:
            raise ValueError("the string is empty; give at least one character")
        return torch.tensor([[index[ch] for ch in s]], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | np.ndarray | list[int]) -> str:
        """The text of a 1-D sequence of ids."""
        return "".join(self.vocab[int(i)] for i in np.asarray(ids).reshape(-1))

    def windows(self, n: int, *, split: str = "test", seed: int = 0) -> torch.Tensor:
        """``n`` random windows ``(n, context)`` of the train or test part (seeded)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        lo, hi = (0, self.train_end) if split == "train" else (self.train_end, len(self.ids))
        g = torch.Generator().manual_seed(seed)
        starts = torch.randint(lo, hi - self.context, (int(n),), generator=g)
        return torch.stack([self.ids[s : s + self.context] for s in starts.tolist()])

    def __len__(self) -> int:
        return len(self.text)

    def __repr__(self) -> str:
        return (
            f"CharText({len(self.text):,} characters, {len(self.vocab)} in the vocabulary, "
            f"train {self.train_end:,} / test {len(self.text) - self.train_end:,}, "
            f"{len(self.X)} held-out windows of {self.context})"
        )


def python_help(context: int = 64, windows: int = 512, test_fraction: float = 0.1, seed: int = 0) -> CharText:
    """The corpus of Python's help pages, split, with held-out windows for widgets.

    Parameters
    ----------
    context : int
        Window length (the models' context).
    windows : int
        Held-out windows in ``X``.
    test_fraction : float
        Share of the corpus (its end) held out.
    seed : int
        Seeds the choice of windows.

    Returns
    -------
    CharText
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    text = CORPUS.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([index[ch] for ch in text], dtype=torch.int64)
    train_end = int(len(text) * (1 - test_fraction))
    data = CharText(text, vocab, ids, train_end, int(context), torch.empty(0, context, dtype=torch.int64), [], [])
    data.X = data.windows(windows, split="test", seed=seed)
    data.tokens = [[vocab[int(i)] for i in row] for row in data.X]
    data.captions = ["".join(row) for row in data.tokens]
    return data
