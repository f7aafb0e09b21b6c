"""The split (leave-one-out by time): each user's interactions are sorted by timestamp, stably (ties
keep file order); the last one is test, the one before it validation, the rest training. A sealed
split locks the test targets away from training and model selection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from toolkit.core.contract import REPEATS_MODES
from toolkit.core.errors import ToolkitError
from toolkit.data.dataset import Dataset


class TestDataAccessError(AssertionError):
    """Test targets were read where only training and validation data may be (a bug, not bad input)."""


@dataclass
class Split:
    """Leave-one-out split: training prefix, validation item and test item per user.

    `sealed()` gives the same split with the test targets locked away: training, planning and
    model selection get that one, so reading a test target there raises `TestDataAccessError`.
    """

    train: list[np.ndarray]
    valid_target: np.ndarray  # (U,)
    test_target_: np.ndarray  # (U,) read through `test_target`
    num_items: int
    is_sealed: bool = False
    eval_rows: np.ndarray | None = None  # users that evaluation reads (None: all); training reads everyone
    allow_repeats: bool = False  # evaluation keeps seen items as answers (the build's `--repeats allow`)

    @property
    def test_target(self) -> np.ndarray:
        if self.is_sealed:
            raise TestDataAccessError("a test target was read while training or choosing a model "
                                      "(only training and validation data may be used there)")
        return self.test_target_

    def sealed(self) -> Split:
        return replace(self, is_sealed=True)

    def subset(self, users: np.ndarray) -> Split:
        """The split of these users only (row indices), sealed if this one is."""
        return replace(self, train=[self.train[u] for u in users.tolist()], valid_target=self.valid_target[users],
                       test_target_=self.test_target_[users], eval_rows=None)

    def relabelled(self, new_of_old: np.ndarray) -> Split:
        """The same split with every item index mapped through `new_of_old` (N,) (0 stays 0)."""
        return replace(self, train=[new_of_old[t] for t in self.train], valid_target=new_of_old[self.valid_target],
                       test_target_=new_of_old[self.test_target_])

    def evaluated_on(self, n: int, seed: int = 0) -> Split:
        """The same split, evaluated on a fixed random sample of n users (all when n is 0 or at least
        their number): full ranking over a large catalogue for every user costs users x items."""
        if not n or n >= len(self.train):
            return replace(self, eval_rows=None)
        return replace(self, eval_rows=np.sort(np.random.default_rng(seed).choice(len(self.train), n, replace=False)))

    def history(self, phase: str) -> list[np.ndarray]:
        """What the model sees before predicting `phase` ("valid" or "test"), for the evaluated users."""
        rows = range(len(self.train)) if self.eval_rows is None else self.eval_rows.tolist()
        if phase == "valid":
            return [self.train[u] for u in rows]
        if phase == "test":
            return [np.append(self.train[u], self.valid_target[u]) for u in rows]
        raise ValueError(f"unknown phase {phase!r}")

    def target(self, phase: str) -> np.ndarray:
        """The evaluated users' targets of `phase`."""
        if phase not in ("valid", "test"):
            raise ValueError(f"unknown phase {phase!r}")
        targets = self.valid_target if phase == "valid" else self.test_target
        return targets if self.eval_rows is None else targets[self.eval_rows]


def check_repeats(repeats: str) -> str:
    if repeats not in REPEATS_MODES:
        raise ToolkitError(f"--repeats {repeats!r}: not valid; valid: {', '.join(REPEATS_MODES)}")
    return repeats


def split_leave_one_out(dataset: Dataset, allow_repeats: bool = False) -> Split:
    """Last interaction is test, the one before validation, the rest training."""
    train = [s[:-2] for s in dataset.sequences]
    valid = np.array([s[-2] for s in dataset.sequences], dtype=np.int64)
    test = np.array([s[-1] for s in dataset.sequences], dtype=np.int64)
    return Split(train=train, valid_target=valid, test_target_=test, num_items=dataset.num_items,
                 allow_repeats=allow_repeats)
