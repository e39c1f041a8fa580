"""fastrec.features: specs, column transforms (against hand-computed values), the preprocessor's save/load, batches,
bad input."""

import zlib

import numpy as np
import pytest

from fastrec.features import (
    Binned,
    Categorical,
    Cross,
    DenseFeature,
    FeatureTable,
    Hashed,
    MultiHot,
    MultiHotFeature,
    Numeric,
    Preprocessor,
    Sequence,
    SequenceFeature,
    SparseFeature,
)


def table():
    return {
        "user": np.array([10, 20, 10, 30, 10, 20]),
        "city": np.array(["b", "a", "b", None, "c", "a"], dtype=object),
        "tags": np.array([("x", "y"), ("y",), (), ("z", "x", "y"), ("x",), ("q",)] + [()], dtype=object)[:-1],
        "hist": np.array([(1, 2, 3), (2,), (), (3, 1), (1, 1, 1, 2), (9,)] + [()], dtype=object)[:-1],
        "item": np.array([1, 2, 3, 1, 2, 3]),
        "age": np.array([20.0, 30.0, 40.0, 50.0, 60.0, 70.0]),
        "click": np.array([1, 0, 1, 0, 0, 1]),
    }


def test_categorical_min_count_oov_and_unseen():
    c = Categorical("user", min_count=2)
    pre = Preprocessor([c]).fit(table())
    assert c.vocab.values == [10, 20]  # 30 seen once -> OOV
    out = pre.transform({"user": np.array([10, 20, 30, 99])}).columns["user"]
    np.testing.assert_array_equal(out, [1, 2, 0, 0])
    assert pre.features == [SparseFeature("user", 3)]


def test_categorical_strings_with_missing_values():
    pre = Preprocessor([Categorical("city")]).fit(table())
    out = pre.transform(table()).columns["city"]
    np.testing.assert_array_equal(out, [2, 1, 2, 0, 3, 1])  # sorted a, b, c; None -> OOV
    out = pre.transform({"city": np.array(["zz", "c"], dtype=object)}).columns["city"]
    np.testing.assert_array_equal(out, [0, 3])
    # an integer column at inference against a string vocabulary: OOV, never a crash
    np.testing.assert_array_equal(pre.transform({"city": np.array([1, 2])}).columns["city"], [0, 0])


def test_hashed_is_crc32_of_the_string_form():
    pre = Preprocessor([Hashed("city", buckets=7, seed=3)]).fit(table())
    out = pre.transform({"city": np.array(["a", "b", "unseen"], dtype=object)}).columns["city"]
    expect = [zlib.crc32(b"3\x1f" + s.encode()) % 7 for s in ("a", "b", "unseen")]
    np.testing.assert_array_equal(out, expect)
    assert pre.features[0] == SparseFeature("city", 7)


def test_multi_hot_padding_and_strings():
    pre = Preprocessor([MultiHot("tags", pooling="sum")]).fit(table())
    out = pre.transform(table()).columns["tags"]
    # vocab q, x, y, z -> 1..4; longest bag 3
    np.testing.assert_array_equal(out, [[2, 3, -1], [3, -1, -1], [-1, -1, -1], [4, 2, 3], [2, -1, -1], [1, -1, -1]])
    assert pre.features[0] == MultiHotFeature("tags", 5, "sum")
    s = Preprocessor([MultiHot("t", sep="|", max_len=2)]).fit({"t": np.array(["a|b|c", "b", ""], dtype=object)})
    np.testing.assert_array_equal(s.transform({"t": np.array(["c|a|b", "zz"], dtype=object)}).columns["t"],
                                  [[3, 1], [0, -1]])


def test_sequence_keeps_last_ids_and_shares_the_item_vocabulary():
    pre = Preprocessor([Categorical("item"), Sequence("hist", max_len=3, vocabulary="item")]).fit(table())
    out = pre.transform(table()).columns["hist"]
    np.testing.assert_array_equal(out, [[1, 2, 3], [2, -1, -1], [-1, -1, -1], [3, 1, -1], [1, 1, 2], [0, -1, -1]])
    assert pre.features[1] == SequenceFeature("hist", 4, 3, "item")


def test_numeric_normalization_and_nan_policy():
    t = table()
    pre = Preprocessor([Numeric("age")]).fit(t)
    np.testing.assert_allclose(pre.transform(t).columns["age"], (t["age"] - t["age"].mean()) / t["age"].std(),
                               rtol=1e-6)
    mm = Preprocessor([Numeric("age", normalize="minmax")]).fit(t)
    np.testing.assert_allclose(mm.transform({"age": np.array([20.0, 70.0, 45.0])}).columns["age"], [0, 1, 0.5])
    log = Preprocessor([Numeric("x", normalize="log")]).fit({"x": np.array([1.0, 2.0, 10.0])})
    np.testing.assert_allclose(log.transform({"x": np.array([1.0, 10.0])}).columns["x"], [1.0, np.log(10) ** 2],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="'age' has 1 NaN"):
        pre.transform({"age": np.array([1.0, np.nan])})
    filled = Preprocessor([Numeric("age", normalize=None, fill_na="mean")]).fit({"age": np.array([1.0, np.nan, 3.0])})
    np.testing.assert_allclose(filled.transform({"age": np.array([np.nan, 5.0])}).columns["age"], [2.0, 5.0])


def test_binned_quantiles_and_boundaries():
    pre = Preprocessor([Binned("age", bins=2)]).fit(table())
    np.testing.assert_array_equal(pre.transform({"age": np.array([10.0, 44.0, 45.0, np.nan])}).columns["age"],
                                  [1, 1, 2, 0])  # median 45: ids 1 (< 45), 2 (>= 45), NaN -> 0
    given = Preprocessor([Binned("age", bins=[30, 50])]).fit(table())
    np.testing.assert_array_equal(given.transform({"age": np.array([29.0, 30.0, 51.0])}).columns["age"], [1, 2, 3])
    assert given.features[0] == SparseFeature("age", 4)


def test_cross_hashes_the_value_pair():
    pre = Preprocessor([Cross(["user", "city"], buckets=1 << 20)]).fit(table())
    out = pre.transform(table()).columns["user_x_city"]
    assert out[0] == out[2] and out[1] == out[5]  # (10, b) twice, (20, a) twice
    assert len({out[0], out[1], out[3], out[4]}) == 4


def test_save_load_round_trip(tmp_path):
    t = table()
    pre = Preprocessor([Categorical("user", min_count=2), Categorical("item", table="items"), MultiHot("tags"),
                        Sequence("hist", 3, vocabulary="item"), Numeric("age"), Binned("age", 3, name="age_bin"),
                        Hashed("city", 11), Cross(["user", "item"], 101)])
    data = pre.fit_transform(t, label="click")
    pre.save(tmp_path / "pre.json")
    loaded = Preprocessor.load(tmp_path / "pre.json")
    again = loaded.transform(t, label="click")
    assert loaded.features == pre.features
    for k in data.columns:
        np.testing.assert_array_equal(again.columns[k], data.columns[k])
    np.testing.assert_array_equal(again.labels, data.labels)


def test_pandas_dataframe_input():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"user": [1, 2, 1], "age": [1.0, 2.0, 3.0], "y": [0, 1, 1]})
    data = Preprocessor([Categorical("user"), Numeric("age")]).fit_transform(df, label="y")
    np.testing.assert_array_equal(data.columns["user"], [1, 2, 1])
    np.testing.assert_array_equal(data.labels, [0, 1, 1])


def test_bad_input_names_the_column():
    with pytest.raises(KeyError, match="'nope' is not in the data"):
        Preprocessor([Categorical("nope")]).fit(table())
    pre = Preprocessor([Categorical("user")]).fit(table())
    with pytest.raises(ValueError, match="label column 'item' must hold 0 or 1"):
        pre.transform(table(), label="item")
    with pytest.raises(RuntimeError, match="not fitted"):
        Preprocessor([Categorical("user")]).transform(table())
    with pytest.raises(ValueError, match="unique"):
        Preprocessor([Categorical("user"), Numeric("user")])
    with pytest.raises(ValueError, match="vocabulary='nope'"):
        Preprocessor([Sequence("hist", 3, vocabulary="nope")]).fit(table())
    with pytest.raises(ValueError, match="vocab_size"):
        SparseFeature("x", 0)
    with pytest.raises(ValueError, match="weighted"):
        MultiHotFeature("x", 3, "mean", weighted=True)
    with pytest.raises(ValueError, match="dim"):
        DenseFeature("x", 0)


def test_feature_table_split_and_batches():
    data = FeatureTable({"a": np.arange(10), "b": np.arange(10.0)}, np.arange(10) % 2)
    parts = data.split((0.8, 0.1, 0.1), seed=1)
    assert [len(p) for p in parts] == [8, 1, 1]
    assert sorted(np.concatenate([p.columns["a"] for p in parts]).tolist()) == list(range(10))
    batches = list(data.batches(4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert batches[0][0]["a"].dtype.is_floating_point is False and batches[0][0]["b"].dtype.is_floating_point
    shuffled = data.batches(4, shuffle=True, seed=3)
    first = np.concatenate([x["a"].numpy() for x, _ in shuffled.epoch_batches(0)])
    assert sorted(first.tolist()) == list(range(10))
    np.testing.assert_array_equal(first, np.concatenate([x["a"].numpy() for x, _ in shuffled.epoch_batches(0)]))
