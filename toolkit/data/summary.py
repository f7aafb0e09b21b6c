"""What a build read and kept of its data (`DataSummary`): rows, duplicates and users dropped, repeat
events, and the test targets no model can hit when seen items are never recommended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from toolkit.data.dataset import MIN_INTERACTIONS_PER_USER, Dataset
from toolkit.data.split import Split

# Above this share of test users whose test item is already in their history (so that, with seen
# items never recommended, they can never be hit) the build warns: MovieLens-100K has none (a film
# is rated once); 5% already caps HR@10 at 0.95 and means the log has repeat consumption, where
# `--repeats allow` measures what the app would really show.
UNREACHABLE_WARN_SHARE = 0.05


@dataclass
class DataSummary:
    """What the build read and what it kept: in the build log, the manifest (`data`) and the report."""

    name: str
    rows_read: int  # data rows of the file (MovieLens-100K: its 100,000 ratings)
    duplicates_dropped: int  # exact duplicates (same user, item and instant), the first kept
    users_dropped: int  # users with fewer than MIN_INTERACTIONS_PER_USER events (after duplicates)
    users: int
    items: int
    interactions: int  # events kept
    time_read_as: str
    repeats: str  # REPEATS_MODES: "drop" (seen items are never recommended) or "allow"
    repeat_events: int  # events of an item the user already had earlier (repeat consumption, kept)
    test_users: int
    test_targets_seen: int  # users whose test item is already in their history
    warn_share: float = UNREACHABLE_WARN_SHARE

    @property
    def unreachable_test_targets(self) -> int:
        """Test targets no model can hit: in the history, and seen items are dropped (0 under "allow")."""
        return self.test_targets_seen if self.repeats == "drop" else 0

    def text(self) -> str:
        seen = self.test_targets_seen
        share = seen / max(self.test_users, 1)
        targets = (f"{self.unreachable_test_targets} of {self.test_users} test targets ({share:.1%}) unreachable (already in "
                   "the user's history; --repeats drop never recommends a seen item)" if self.repeats == "drop" else
                   f"--repeats allow: seen items may be recommended and count as hits ({seen} of {self.test_users} "
                   f"test targets, {share:.1%}, are repeats)")
        return (f"data: {self.name}: {self.rows_read:,} rows read, {self.duplicates_dropped:,} exact duplicates dropped, "
                f"{self.users_dropped:,} users dropped (fewer than {MIN_INTERACTIONS_PER_USER} events); {self.users:,} "
                f"users, {self.items:,} items, {self.interactions:,} interactions ({self.repeat_events:,} repeat events "
                f"kept); time read as {self.time_read_as}; {targets}")

    def warnings(self) -> list[str]:
        share = self.unreachable_test_targets / max(self.test_users, 1)
        if share <= self.warn_share:
            return []
        return [f"warning: {self.unreachable_test_targets} of {self.test_users} test users ({share:.0%}, above "
                f"{self.warn_share:.0%}) can never be hit: their test item is already in their history and "
                "--repeats drop never recommends a seen item; if users re-consume items (groceries, music, re-reads) "
                "build with --repeats allow"]

    def to_dict(self) -> dict:
        return {**asdict(self), "unreachable_test_targets": self.unreachable_test_targets}


def summarize(dataset: Dataset, split: Split, repeats: str) -> DataSummary:
    """The data summary of a build (every user, not only the evaluated sample)."""
    repeat_events = sum(len(s) - len(np.unique(s)) for s in dataset.sequences)
    seen = sum(bool(t == v or np.any(h == t)) for h, v, t in zip(split.train, split.valid_target.tolist(),
                                                                split.test_target_.tolist()))
    return DataSummary(name=dataset.name, rows_read=dataset.rows_read or dataset.num_interactions,
                       duplicates_dropped=dataset.duplicates_dropped, users_dropped=dataset.dropped_users,
                       users=len(dataset.user_ids), items=dataset.num_items - 1, interactions=dataset.num_interactions,
                       time_read_as=dataset.time_read_as, repeats=repeats, repeat_events=int(repeat_events),
                       test_users=len(split.train), test_targets_seen=int(seen))
