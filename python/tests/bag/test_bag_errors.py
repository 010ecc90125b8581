"""Bad input: the user's exception comes back from compute as itself (as Dask raises it),
and misuse is refused when the bag is built, with a message saying what is wrong."""

import json

import pytest

import oxidask.bag as db


class Custom(Exception):
    pass


def boom(x):
    if x == 7:
        raise Custom(f"record {x} is bad")
    return x


@pytest.mark.parametrize("schedule", ["sync", "threads", "processes"])
def test_a_raising_function_raises_its_exception(schedule):
    b = db.from_sequence(range(20), npartitions=4)
    with pytest.raises(Custom, match="record 7 is bad"):
        b.map(boom).compute(scheduler=schedule)
    with pytest.raises(Custom, match="record 7 is bad"):
        b.filter(lambda x: boom(x) > 3).count().compute(scheduler=schedule)
    with pytest.raises(ZeroDivisionError):
        b.map(lambda x: 1 / (x - 5)).sum().compute(scheduler=schedule)
    # The same bag still computes when the bad record is filtered out first.
    assert b.remove(lambda x: x == 7).map(boom).count().compute(scheduler=schedule) == 19


def test_malformed_json_line(tmp_path, scheduler):
    p = tmp_path / "data.jsonl"
    p.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    b = db.read_text(str(p)).map(json.loads)
    with pytest.raises(json.JSONDecodeError):
        b.compute(scheduler=scheduler)
    # The bad-records pattern: keep the good ones, count the bad.
    def parse(line):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return None
    records = db.read_text(str(p)).map(parse)
    assert records.remove(lambda r: r is None).pluck("a").compute(scheduler=scheduler) == [1, 3]
    assert records.filter(lambda r: r is None).count().compute(scheduler=scheduler) == 1


def test_missing_file_at_compute_time(tmp_path, scheduler):
    p = tmp_path / "gone.txt"
    p.write_text("x\n")
    b = db.read_text(str(p))
    p.unlink()
    with pytest.raises(FileNotFoundError, match="gone.txt"):
        b.compute(scheduler=scheduler)


def test_misuse_is_refused_early():
    a = db.from_sequence(range(4), npartitions=2)
    c = db.from_sequence(range(4), npartitions=4)
    with pytest.raises(ValueError, match="same number of partitions"):
        a.map(lambda x, y: x + y, c)
    with pytest.raises(ValueError, match="At least one argument must be a Bag"):
        db.map(lambda x: x, 1)
    with pytest.raises(ValueError, match="same number of partitions"):
        db.zip(a, c)
    with pytest.raises(ValueError, match="split_every"):
        a.sum(split_every=1)
    with pytest.raises(ValueError, match="npartitions"):
        db.from_sequence(range(3), npartitions=0)
    with pytest.raises(ValueError, match="only 2 partitions"):
        a.take(1, npartitions=3)
    with pytest.raises(TypeError, match="Delayed"):
        db.from_delayed([[1, 2]])
    with pytest.raises(ValueError, match="both `meta` and `columns`"):
        a.to_dataframe(meta={"x": "int64"}, columns=["x"])
    with pytest.raises(NotImplementedError, match="Shuffle must be"):
        a.groupby(lambda x: x, shuffle="p2p")


def test_unequal_partitions_in_a_multi_bag_map(scheduler):
    a = db.from_sequence(range(4), npartitions=2)
    b = db.from_sequence(range(5), npartitions=2)
    with pytest.raises(ValueError, match="equal lengths"):
        a.map(lambda x, y: x + y, b).compute(scheduler=scheduler)


def test_pickling_a_bag_says_what_to_do():
    import pickle

    b = db.from_sequence(range(3))
    with pytest.raises(TypeError, match="to_delayed"):
        pickle.dumps(b)
    with pytest.raises(TypeError, match="to_delayed"):
        pickle.dumps(b.count())
