"""merge with an in-memory pandas frame on the right, as Dask users join a small lookup table
(regression: oxidask refused a pandas right side with an AttributeError)."""

import pandas as pd
import pandas.testing as pdt

import oxidask.dataframe as dd


def test_merge_pandas_right_matches_pandas():
    trips = pd.DataFrame({"zone": [1, 2, 3, 2, 9, 1, 3, 3], "fare": [1.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5, 8.0]})
    zones = pd.DataFrame({"LocationID": [1, 2, 3, 4], "Borough": ["Bronx", "Queens", "Bronx", "EWR"]})
    df = dd.from_pandas(trips, npartitions=3)
    got = df.merge(zones, left_on="zone", right_on="LocationID", how="inner")
    want = trips.merge(zones, left_on="zone", right_on="LocationID", how="inner")
    cols = ["zone", "fare", "Borough"]
    out = got.compute()[cols].sort_values(["zone", "fare"]).reset_index(drop=True)
    pdt.assert_frame_equal(out, want[cols].sort_values(["zone", "fare"]).reset_index(drop=True), check_dtype=False)
    counts = got.Borough.value_counts().compute().sort_index()
    pdt.assert_series_equal(counts, want.Borough.value_counts().sort_index(), check_dtype=False)


import pytest


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
@pytest.mark.parametrize("right_has_k", [False, True])
def test_merge_left_on_right_on_keeps_both_key_columns_regression(how, right_has_k):
    # The right key column was dropped (the engine coalesces join keys); pandas keeps both,
    # each null where its side had no row, and suffixes a right column named like the left key.
    a = pd.DataFrame({"k": [1, 2, 3, 4, 2], "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    b = pd.DataFrame({"kk": [2, 3, 5, 3], "y": [7, 8, 9, 10]})
    if right_has_k:
        b["k"] = [0, 1, 0, 1]
    want = a.merge(b, how=how, left_on="k", right_on="kk")
    got = dd.from_pandas(a, npartitions=2).merge(
        dd.from_pandas(b, npartitions=3), how=how, left_on="k", right_on="kk"
    ).compute()
    assert list(got.columns) == list(want.columns)
    order = list(want.columns)
    pdt.assert_frame_equal(
        got.sort_values(order).reset_index(drop=True),
        want.sort_values(order).reset_index(drop=True),
        check_dtype=False,
    )
