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
