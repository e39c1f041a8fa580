"""Loaders: the real datasets in ../shared/data (skipped when absent) and small files with edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastrec.data import Interactions, load_user_item_lines

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"


def need(*parts: str) -> Path:
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


def test_gowalla_train_test_share_ids():
    train = load_user_item_lines(need("gowalla", "train.txt"), user_ids="identity", item_ids="identity",
                                 n_items=40981)
    test = load_user_item_lines(need("gowalla", "test.txt"), user_ids="identity", item_ids="identity",
                                n_users=train.n_users, n_items=train.n_items)
    assert train.shape == test.shape == (29858, 40981)
    assert train.nnz == 810128 and test.nnz == 217242
    # the first line of train.txt is "0 0 1 2 ...": user 0's items start 0, 1, 2
    first = (DATA / "gowalla" / "train.txt").read_text().split("\n", 1)[0].split()
    np.testing.assert_array_equal(train.row(0), np.array(sorted(map(int, first[1:]))))
    # mapping by the train id tables gives the same matrix as identity ids
    mapped = load_user_item_lines(DATA / "gowalla" / "test.txt", user_ids=train.user_ids, item_ids=train.item_ids)
    assert mapped.equals(test)


def test_beauty_positions_and_one_based_ids():
    path = need("beauty", "Beauty.txt")
    x = load_user_item_lines(path, positions_as_timestamps=True)
    assert x.shape == (22363, 12101) and x.nnz == 198502
    assert x.user_ids[0] == 1 and x.item_ids[0] == 1  # 1-based external ids, 0-based internal
    line = path.read_text().split("\n", 2)[1].split()  # second user, items in time order
    offsets, items = x.sequences()
    u = int(x.user_index([int(line[0])])[0])
    assert x.item_ids[items[offsets[u]:offsets[u + 1]]].tolist() == [int(t) for t in line[1:]]


def test_small_files(tmp_path):
    p = tmp_path / "lines.txt"
    p.write_text("3 10 11\r\n\n5\n1 11 12 12\n")
    with pytest.raises(ValueError, match=r"1 duplicate .*user 1 item 12"):
        load_user_item_lines(p)
    x = load_user_item_lines(p, duplicates="first")
    assert x.user_ids.tolist() == [1, 3, 5]  # user 5 has a line but no items: kept in the id space
    assert x.item_ids.tolist() == [10, 11, 12] and x.user_degrees().tolist() == [2, 2, 0]
    ident = load_user_item_lines(p, user_ids="identity", item_ids="identity", duplicates="first")
    assert ident.shape == (6, 13) and ident.row(3).tolist() == [10, 11]
    s = tmp_path / "strings.txt"
    s.write_text("alice x y\nbob y\n")
    y = load_user_item_lines(s)
    assert y.user_ids.tolist() == ["alice", "bob"] and y.to_scipy().toarray().tolist() == [[1, 1], [0, 1]]
    neg = tmp_path / "neg.txt"
    neg.write_text("0 1 -2\n")
    with pytest.raises(ValueError, match=r"items must be non-negative ids: items\[1\] = -2"):
        load_user_item_lines(neg)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="empty input"):
        load_user_item_lines(empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_user_item_lines(tmp_path / "missing.txt")
    assert isinstance(x, Interactions)


def test_ml100k_recbole_inter():
    from fastrec.data.loaders import load_recbole_inter, read_atomic

    path = need("ml-100k", "ml-100k.inter")
    cols = read_atomic(path)
    assert list(cols) == ["user_id", "item_id", "rating", "timestamp"] and cols["user_id"].shape == (100000,)
    assert [cols[k][0] for k in cols] == [196, 242, 3.0, 881250949]  # file order kept
    x = load_recbole_inter(path)
    assert x.shape == (943, 1682) and x.nnz == 100000
    u, i = x.user_index([196])[0], x.item_index([242])[0]
    k = x.indptr[u] + np.searchsorted(x.row(u), i)
    assert x.values[k] == 3.0 and x.timestamps[k] == 881250949
    items = read_atomic(DATA / "ml-100k" / "ml-100k.item")
    assert items["movie_title"][0] == ("Toy", "Story") and items["class"][0] == ("Animation", "Children's", "Comedy")
    users = read_atomic(DATA / "ml-100k" / "ml-100k.user")
    assert users["age"].dtype == np.int64 and users["zip_code"][0] == "85711"


def test_movielens_formats(tmp_path):
    from fastrec.data.loaders import load, load_movielens, read_movielens

    rows = [(1, 10, 4.0, 100), (2, 10, 3.0, 50), (1, 11, 5.0, 70)]
    (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows))
    (tmp_path / "ratings.dat").write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in rows))
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" +
                                     "".join(f"{u},{i},{r - 0.5},{t}\n" for u, i, r, t in rows))
    a = read_movielens(tmp_path / "u.data")
    b = read_movielens(tmp_path / "ratings.dat")
    c = read_movielens(csv)  # a folder holding one
    for cols in (a, b, c):
        assert cols["user_id"].tolist() == [1, 2, 1] and cols["timestamp"].tolist() == [100, 50, 70]
    assert c["rating"].tolist() == [3.5, 2.5, 4.5] and a["rating"].dtype == np.float64
    x = load(tmp_path / "ratings.dat")
    assert x.to_scipy().toarray().tolist() == [[4, 5], [3, 0]]
    assert load_movielens(csv / "ratings.csv").values.tolist() == [3.5, 4.5, 2.5]
    with pytest.raises(ValueError, match="unknown MovieLens file 'movies.dat'"):
        read_movielens(tmp_path / "movies.dat")


def test_sessions(tmp_path):
    from fastrec.data.loaders import load_sessions

    s = load_sessions(need("diginetica", "train_sessions.txt"))
    assert len(s) == 186670 and len(s.prefix_targets()) == 719470  # the README's count of training examples
    t = load_sessions(DATA / "diginetica" / "test_prefix_label.tsv")
    assert len(t) == 60858 and t.session(0).tolist() == [21553, 20071, 8762, 21566, 6381]
    assert t.labels[0] == 21566
    small = tmp_path / "s.txt"
    small.write_text("5 6 7\n8\n9 9\n")
    ex = load_sessions(small).prefix_targets()
    assert [ex.session(k).tolist() for k in range(len(ex))] == [[5], [5, 6], [9]]
    assert ex.labels.tolist() == [6, 7, 9]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 x\n")
    with pytest.raises(ValueError, match="session items must be non-negative integers"):
        load_sessions(bad)


def test_libsvm(tmp_path):
    from fastrec.data.loaders import load_libsvm

    v = load_libsvm(need("frappe", "frappe.validation.libfm"))
    assert len(v) == 57722 and v.fixed_width() == 10  # (the data README says 57,721; the file has 57,722 lines)
    assert v.labels[0] == 1 and v.indices[:3].tolist() == [266, 1244, 5042] and set(np.unique(v.labels)) == {-1, 1}
    small = tmp_path / "x.libsvm"
    small.write_text("1 3:0.5 7:2\n-1 2:1\n")
    d = load_libsvm(small)
    assert d.indptr.tolist() == [0, 2, 3] and d.indices.tolist() == [3, 7, 2] and d.values.tolist() == [0.5, 2, 1]
    assert d.fixed_width() is None and d.binary_labels().tolist() == [1, 0] and d.n_features == 8
    bad = tmp_path / "bad.libsvm"
    bad.write_text("1 3:0.5 foo\n")
    with pytest.raises(ValueError, match="is not a libSVM file"):
        load_libsvm(bad)


def test_dispatch_and_dataset_folder(tmp_path, monkeypatch):
    from fastrec.data.loaders import dataset_path, load, load_dataset

    with pytest.raises(ValueError, match=r"unknown file format for path .*'\.parquet'"):
        load(tmp_path / "x.parquet")
    monkeypatch.delenv("FASTREC_DATA", raising=False)
    with pytest.raises(ValueError, match="FASTREC_DATA"):
        dataset_path("gowalla")
    monkeypatch.setenv("FASTREC_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dataset_path("gowalla")
    (tmp_path / "movielens").mkdir()
    with pytest.raises(ValueError, match="unknown dataset name 'movielens'"):
        load_dataset("movielens")
    if DATA.exists():
        monkeypatch.setenv("FASTREC_DATA", str(DATA))
        lastfm = load_dataset("lastfm")
        assert lastfm["all"].shape == (1090, 3646) and lastfm["sample_negatives"].shape == (1090, 99)
        x = lastfm["all"]
        for k in range(0, 1090, 97):  # the published negatives are never the user's items
            u = x.user_index([lastfm["sample_users"][k]])[0]
            assert not np.isin(x.item_index(lastfm["sample_negatives"][k]), x.row(u)).any()
