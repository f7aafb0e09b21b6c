"""Data loading and the leave-one-out split, on the real MovieLens-100K and small files."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.shop_log import write_shop_log
from toolkit.data import UNREACHABLE_WARN_SHARE, load_dataset, read_interactions, split_leave_one_out, summarize
from toolkit.core.errors import ToolkitError

SHOP_COLUMNS = {"user_col": "customer", "item_col": "product", "time_col": "event_time"}


def test_movielens_100k_counts(movielens):
    assert movielens.name == "movielens-100k"
    assert len(movielens.user_ids) == 943
    assert movielens.num_items - 1 == 1682
    assert movielens.num_interactions == 100_000
    assert movielens.item_ids[0] == ""  # padding
    assert movielens.titles["1"].startswith("Toy Story")


def test_movielens_sequences_are_time_ordered(movielens, cache_dir):
    # user 1's first item in time order, read independently from the raw file
    raw = (cache_dir / "movielens-100k" / "ml-100k.inter").read_text().splitlines()[1:]
    rows = [r.split("\t") for r in raw if r.split("\t")[0] == "1"]
    first = min(rows, key=lambda r: float(r[3]))[1]
    user = movielens.user_ids.index("1")
    assert movielens.item_ids[movielens.sequences[user][0]] == first
    assert len(movielens.sequences[user]) == len(rows)


def test_split_leave_one_out(movielens):
    split = split_leave_one_out(movielens)
    s = movielens.sequences[0]
    assert split.test_target[0] == s[-1] and split.valid_target[0] == s[-2]
    assert np.array_equal(split.train[0], s[:-2])
    assert np.array_equal(split.history("test")[0], s[:-1])
    assert np.array_equal(split.history("valid")[0], s[:-2])


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_with_string_ids_and_stable_ties(tmp_path):
    f = _write(tmp_path / "log.csv", "userId,movieId,rating,timestamp\n"
               "alice,m3,5,10\nalice,m1,4,10\nalice,m2,3,5\nbob,m1,1,1\nbob,m2,1,2\nbob,m3,1,3\ncarol,m1,1,1\n")
    ds = read_interactions(f)
    assert ds.user_ids == ["alice", "bob"]  # carol has fewer than 3 interactions
    assert ds.dropped_users == 1
    alice = [ds.item_ids[i] for i in ds.sequences[0]]
    assert alice == ["m2", "m3", "m1"]  # sorted by time; the tie at 10 keeps file order


def test_tsv_and_recbole_inter_headers(tmp_path):
    f = _write(tmp_path / "x.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
               "1\t7\t3\n1\t8\t1\n1\t9\t2\n")
    ds = read_interactions(f)
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["8", "9", "7"]
    g = _write(tmp_path / "y.tsv", "user\titem\tts\n1\ta\t2020-01-03\n1\tb\t2020-01-01\n1\tc\t2020-01-02\n")
    ds = read_interactions(g)
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["b", "c", "a"]


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"uid": ["u", "u", "u"], "iid": [5, 6, 7], "time": [3, 2, 1]})
    pq.write_table(table, tmp_path / "x.parquet")
    ds = read_interactions(tmp_path / "x.parquet")
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["7", "6", "5"]


def test_column_overrides(tmp_path):
    f = _write(tmp_path / "log.csv", "who,what,when\n1,a,1\n1,b,2\n1,c,3\n")
    with pytest.raises(ToolkitError, match="--user-col"):
        read_interactions(f)
    ds = read_interactions(f, user_col="who", item_col="what", time_col="when")
    assert len(ds.sequences[0]) == 3
    with pytest.raises(ToolkitError, match="--item-col 'nope'.*columns: who, what, when"):
        read_interactions(f, user_col="who", item_col="nope", time_col="when")


@pytest.mark.parametrize("name,text,message", [
    ("a.json", "{}", "unsupported file type '.json'"),
    ("a.csv", "user,item,timestamp\n", "no interactions"),
    ("a.csv", "user,item,timestamp\n1,2,x\n1,3,y\n1,4,z\n",
     "column 'timestamp' must hold epoch seconds or milliseconds, or ISO-8601 .*--time-format.*data row 1 .* holds 'x'"),
    ("a.csv", "user,item,timestamp\n1,2\n", "line 2 has 2 fields"),
    ("a.csv", "user,item,timestamp\n1,2,3\n1,,4\n1,5,6\n", "data row 2 \\(line 3 of a text file\\) has an empty 'item'"),
    ("a.csv", "user,item,timestamp\n,2,3\n1,4,4\n1,5,6\n", "has an empty 'user'"),
    ("a.csv", "user,user,timestamp\n1,2,3\n", "names a column twice"),
    ("a.csv", "user,item,timestamp\n1,2,3\n", "no user has 3 or more"),
])
def test_bad_files_name_the_problem(tmp_path, name, text, message):
    f = _write(tmp_path / name, text)
    with pytest.raises(ToolkitError, match=message):
        read_interactions(f)


def test_missing_file():
    with pytest.raises(ToolkitError, match="no such file"):
        load_dataset("/nonexistent/file.csv")


def test_ids_stay_distinct_strings(tmp_path):
    """"12", "012", "²" and "١٢" are four items: digit-like ids are never turned into numbers."""
    f = _write(tmp_path / "log.csv", "user,item,ts\n1,12,1\n1,²,2\n1,١٢,3\n1,012,4\n1,9,5\n")
    ds = read_interactions(f)
    assert sorted(ds.item_ids[1:]) == sorted(["12", "²", "١٢", "012", "9"])
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["12", "²", "١٢", "012", "9"]


def test_integer_ids_sort_numerically(tmp_path):
    f = _write(tmp_path / "log.csv", "user,item,ts\n10,100,1\n10,9,2\n10,20,3\n9,1,1\n9,2,2\n9,3,3\n")
    ds = read_interactions(f)
    assert ds.item_ids == ["", "1", "2", "3", "9", "20", "100"] and ds.user_ids == ["9", "10"]


def test_binary_file_is_refused_with_its_line(tmp_path):
    f = tmp_path / "data.csv"
    f.write_bytes(b"user,item,ts\n1,2,3\n1,3,4\n\x00\x01\x02binary")
    with pytest.raises(ToolkitError, match="line 4 holds a NUL byte: not a text file"):
        read_interactions(f)


def test_undecodable_bytes_name_the_line_and_the_flag(tmp_path):
    f = tmp_path / "data.csv"
    f.write_bytes(b"user,item,ts\n1,2,3\n1,caf\xe9,4\n1,4,5\n")
    with pytest.raises(ToolkitError, match="line 3 is not valid UTF-8.*--encoding"):
        read_interactions(f)
    ds = read_interactions(f, encoding="latin-1")  # never silently re-read in another encoding
    assert "café" in ds.item_ids


def test_quoted_fields_and_a_byte_order_mark(tmp_path):
    f = tmp_path / "data.csv"
    f.write_bytes('\ufeffuser,item,ts\n1,"a,b",1\n1,"x\ny",2\n1,c,3\n'.encode())
    ds = read_interactions(f)
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["a,b", "x\ny", "c"]


def test_parquet_with_a_missing_id_names_the_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user": ["u", "u", "u"], "item": ["a", None, "c"], "timestamp": [1, 2, 3]}),
                   tmp_path / "x.parquet")
    with pytest.raises(ToolkitError, match="data row 2 .* empty 'item'"):
        read_interactions(tmp_path / "x.parquet")


def test_movielens_has_no_exact_duplicates_and_no_unreachable_targets(movielens):
    """Dropping exact duplicates leaves MovieLens-100K as it was: drop-mode builds stay identical."""
    assert movielens.rows_read == 100_000 and movielens.duplicates_dropped == 0
    assert movielens.time_read_as == "epoch seconds"
    summary = summarize(movielens, split_leave_one_out(movielens), "drop")
    assert summary.unreachable_test_targets == 0 and summary.repeat_events == 0 and not summary.warnings()


def test_zone_aware_iso_times_are_converted_to_utc(tmp_path):
    # 07:00+02:00 is 05:00Z: it comes before 05:16:01Z although its text sorts after it
    f = _write(tmp_path / "log.csv", "user,item,ts\nu,middle,2024-06-15T05:16:01Z\nu,early,2024-06-15T07:00:00+02:00\n"
               "u,last,2024-06-15T03:30:00.5-03:00\n")
    ds = read_interactions(f)
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["early", "middle", "last"]
    assert ds.time_read_as == "ISO-8601 with a zone offset, converted to UTC"


@pytest.mark.parametrize("stamps,read_as", [((1_718_428_561, 1_718_428_562, 1_718_428_500), "epoch seconds"),
                                             ((1_718_428_561_000, 1_718_428_562_000, 1_718_428_500_000),
                                              "epoch milliseconds")])
def test_epoch_seconds_and_milliseconds_are_told_apart(tmp_path, stamps, read_as):
    f = _write(tmp_path / "log.csv", "user,item,ts\n" + "".join(f"u,{i},{t}\n" for i, t in zip("abc", stamps)))
    ds = read_interactions(f)
    assert ds.time_read_as == read_as and [ds.item_ids[i] for i in ds.sequences[0]] == ["c", "a", "b"]


def test_time_format_reads_other_formats_and_names_the_first_row_that_does_not_match(tmp_path):
    f = _write(tmp_path / "log.csv", "user,item,ts\nu,a,15/06/2024 05:16\nu,b,14/06/2024 05:16\nu,c,01/07/2024 00:00\n")
    with pytest.raises(ToolkitError, match="--time-format"):
        read_interactions(f)
    ds = read_interactions(f, time_format="%d/%m/%Y %H:%M")
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["b", "a", "c"] and "%d/%m/%Y %H:%M" in ds.time_read_as
    assert ds.key()["time_format"] == "%d/%m/%Y %H:%M"  # it shapes the sequences: part of every cache key
    g = _write(tmp_path / "bad.csv", "user,item,ts\nu,a,15/06/2024 05:16\nu,b,2024-06-14\nu,c,31/13/2024 00:00\n")
    with pytest.raises(ToolkitError, match=r"data row 2 \(line 3 of a text file\) holds '2024-06-14'.*"
                                           r"does not match --time-format"):
        read_interactions(g, time_format="%d/%m/%Y %H:%M")


@pytest.mark.parametrize("rows,message", [
    # the first row in another format is named, with its line and value (not a later one)
    (["2024-06-15T05:16:01Z", "2024-06-15T05:17:01Z", "1718428561", "2024-06-15 05:18:01"],
     r"mixes time formats: data row 3 \(line 4 of a text file\) holds '1718428561', data row 1 holds "
     r"'2024-06-15T05:16:01Z' \(ISO-8601 with a zone offset\)"),
    (["2024-06-15T05:16:01Z", "2024-06-15T05:16:02", "2024-06-15T05:16:03Z"],
     r"mixes time formats: data row 2 .* holds '2024-06-15T05:16:02'"),
    (["1718428561", "1718428562000", "1718428563"], r"mixes epoch seconds and milliseconds: data row 2 .*'1718428562000'"),
    (["2024-06-15", "2024-13-15", "2024-06-17"], r"data row 2 \(line 3 of a text file\) holds '2024-13-15'.*not a valid date"),
    (["2024-06-15", "", "2024-06-17"], r"data row 2 .* has no 'ts' \(empty\)"),
])
def test_a_column_mixing_formats_names_the_first_bad_row(tmp_path, rows, message):
    f = _write(tmp_path / "log.csv", "user,item,ts\n" + "".join(f"u,{i},{t}\n" for i, t in enumerate(rows)))
    with pytest.raises(ToolkitError, match=message):
        read_interactions(f)


def test_a_directory_is_named_as_one(tmp_path):
    with pytest.raises(ToolkitError, match=f"--data {tmp_path}: is a directory; expected a .csv, .tsv, .inter, "
                                           ".parquet file of interactions"):
        load_dataset(str(tmp_path))


def test_shop_log_duplicates_dropped_repeats_kept_and_counted(tmp_path):
    log = write_shop_log(tmp_path / "shop.csv")
    assert b"\r\n" in log.path.read_bytes()
    ds = read_interactions(log.path)  # a shop's own column names are recognised without flags
    assert ds.columns == {"user": "customer", "item": "product", "time": "event_time"}
    assert read_interactions(log.path, **SHOP_COLUMNS).sequences[0].tolist() == ds.sequences[0].tolist()
    assert ds.rows_read == log.rows and ds.duplicates_dropped == log.duplicates > 0
    assert len(ds.user_ids) == log.customers and ds.dropped_users == log.short_customers
    assert all(i.startswith("SKU-") for i in ds.item_ids[1:])
    split = split_leave_one_out(ds)
    drop, allow = summarize(ds, split, "drop"), summarize(ds, split, "allow")
    # counted independently: a user's test item among the items before it
    seen = sum(int(s[-1] in s[:-1]) for s in ds.sequences)
    assert drop.unreachable_test_targets == drop.test_targets_seen == seen > 0
    assert drop.repeat_events == sum(len(s) - len(set(s.tolist())) for s in ds.sequences) > 0
    assert seen / len(ds.sequences) > UNREACHABLE_WARN_SHARE and "--repeats allow" in drop.warnings()[0]
    assert allow.unreachable_test_targets == 0 and not allow.warnings()
    assert f"{log.duplicates} exact duplicates dropped" in drop.text()
