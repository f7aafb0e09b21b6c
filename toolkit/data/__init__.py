"""Interaction data, one room: a user's file read (read.py) with its timestamps (times.py) into a
`Dataset` and its item vocabulary (dataset.py), the default MovieLens-100K from the RecBole wheel
and `load_dataset` (movielens.py), the leave-one-out `Split` (split.py) and what a build read and
kept (`DataSummary`, summary.py).

Item indices start at 1; 0 is padding. The public names are re-exported here, so
`from toolkit.data import load_dataset, Split` works; nothing here imports torch.
"""

from toolkit.data.dataset import (MIN_INTERACTIONS_PER_USER, SPLIT_RULE, Dataset, first_occurrences,  # noqa: F401
                                  first_users)
from toolkit.data.movielens import (ML100K_MEMBERS, ML100K_ZIP_DIR, RECBOLE_WHEEL,  # noqa: F401
                                    RECBOLE_WHEEL_SHA256, load_dataset, load_movielens_100k, movielens_100k_files,
                                    read_titles)
from toolkit.data.read import (DEFAULT_DATASET, ITEM_COLUMNS, SUPPORTED_SUFFIXES, TIME_COLUMNS,  # noqa: F401
                               USER_COLUMNS, check_data_path, check_encoding, read_interactions)
from toolkit.data.split import Split, TestDataAccessError, check_repeats, split_leave_one_out  # noqa: F401
from toolkit.data.summary import UNREACHABLE_WARN_SHARE, DataSummary, summarize  # noqa: F401
from toolkit.data.times import EPOCH_MS_FROM, TIME_FORMATS  # noqa: F401
