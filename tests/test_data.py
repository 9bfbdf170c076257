"""`Trajectories`: every way in, NaN masks, views, splits, files, and every bad-data message."""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ude_bridge.data import Trajectories
from ude_bridge.errors import BackendUnavailableError, InputError

NAN = float("nan")
FIXTURE = Path(__file__).parent / "data" / "lv_two_runs.csv"


def assert_same(a: Trajectories, b: Trajectories) -> None:
    """Equal states, names and values, bit for bit, NaN where NaN."""
    assert a.states == b.states
    assert a.names == b.names
    assert len(a) == len(b)
    for ta, tb, ua, ub in zip(a.t, b.t, a.u, b.u, strict=True):
        assert ta.dtype == tb.dtype == torch.float64
        torch.testing.assert_close(ta, tb, rtol=0, atol=0)
        torch.testing.assert_close(ua, ub, rtol=0, atol=0, equal_nan=True)
    for ma, mb in zip(a.mask, b.mask, strict=True):
        assert torch.equal(ma, mb)


def ragged() -> Trajectories:
    t = [np.array([0.0, 0.1, 0.25]), np.array([1.0, 2.0, 3.5, 4.0])]
    u = [
        np.array([[1.0, NAN], [2.0, 0.5], [1 / 3, -1e-300]]),
        np.array([[NAN, 1.0], [4.0, 2.0], [5.0, NAN], [6.0, 7.0]]),
    ]
    return Trajectories(t, u, states=("x", "y"), names=("run a", "run,b"))


def shared(R: int = 4, T: int = 10) -> Trajectories:
    t = torch.linspace(0.0, 1.0, T)
    u = torch.arange(R * T * 2, dtype=torch.float64).reshape(R, T, 2)
    return Trajectories(t, u, states=("x", "y"))


# ------------------------------------------------------------------------- construction


def test_one_trajectory_from_a_2d_array_gets_default_state_and_trajectory_names():
    data = Trajectories(np.linspace(0, 1, 5), np.ones((5, 3)))
    assert len(data) == data.n_trajectories == 1
    assert data.n_states == 3
    assert data.states == ("x1", "x2", "x3")
    assert data.names == (0,)
    assert data.u[0].shape == (5, 3)
    assert data.t[0].dtype == data.u[0].dtype == torch.float64


def test_a_3d_array_on_a_shared_grid_is_r_trajectories_sharing_that_grid():
    data = shared(R=3, T=7)
    assert data.names == (0, 1, 2)
    assert data.n_points == (7, 7, 7)
    assert all(torch.equal(t_i, data.t[0]) for t_i in data.t)
    assert torch.equal(data.u[2], torch.arange(28.0, 42.0, dtype=torch.float64).reshape(7, 2))


def test_lists_of_arrays_give_ragged_trajectories_with_their_own_grids():
    data = ragged()
    assert data.n_points == (3, 4)
    assert data.names == ("run a", "run,b")
    assert data.tspan(0) == (0.0, 0.25)
    assert data.tspan(-1) == (1.0, 4.0)


def test_a_list_of_arrays_on_one_shared_grid_is_one_trajectory_per_array():
    data = Trajectories([0.0, 1.0, 2.0], [np.zeros((3, 2)), np.ones((3, 2))])
    assert len(data) == 2 and data.n_points == (3, 3)


def test_a_1d_u_is_one_trajectory_of_one_state():
    data = Trajectories(torch.arange(4.0), torch.tensor([1.0, 2.0, NAN, 4.0]), states="x")
    assert data.states == ("x",)
    assert data.u[0].shape == (4, 1)


def test_inputs_are_copied_to_float64_and_later_edits_do_not_leak_in():
    u = np.ones((3, 1), dtype=np.float32)
    data = Trajectories(np.arange(3, dtype=np.int64), u)
    u[0, 0] = 5.0
    assert data.u[0][0, 0] == 1.0
    assert data.t[0].dtype == data.u[0].dtype == torch.float64
    data32 = Trajectories(torch.arange(3.0), torch.ones(3, 1, dtype=torch.float32))
    assert data32.dtype == torch.float64


def test_nan_marks_missing_entries_in_the_mask_per_component():
    data = ragged()
    assert data.mask[0].tolist() == [[True, False], [True, True], [True, True]]
    assert data.mask[1].tolist() == [[False, True], [True, True], [True, False], [True, True]]
    assert data.mask[0].dtype == torch.bool


def test_a_subset_of_states_is_data_with_only_those_columns():
    t = np.linspace(0, 1, 4)
    data = Trajectories(t, np.array([1.0, NAN, 3.0, 4.0])[:, None], states=("x",))
    assert data.states == ("x",) and data.n_states == 1
    assert data.mask[0][:, 0].tolist() == [True, False, True, True]


def test_select_keeps_the_named_columns_in_the_given_order():
    data = ragged().select(["y", "x"])
    assert data.states == ("y", "x")
    assert torch.equal(data.u[1][1], torch.tensor([2.0, 4.0], dtype=torch.float64))
    assert ragged().select("x").states == ("x",)


def test_select_of_an_unknown_state_suggests_the_nearest():
    with pytest.raises(InputError, match=r"Trajectories.select: unknown state 'yy'.*'y'"):
        ragged().select(["yy"])


def test_select_that_leaves_a_trajectory_unobserved_names_it():
    u = [np.array([[1.0, NAN], [2.0, NAN]]), np.array([[1.0, 3.0], [2.0, 4.0]])]
    both = Trajectories([0.0, 1.0], u, states=("x", "y"))
    with pytest.raises(InputError, match="Trajectories.select: trajectory 0 has no observed value"):
        both.select("y")


# ------------------------------------------------------------------------- views


def test_indexing_and_iteration_give_single_trajectory_views_with_their_names():
    data = ragged()
    second = data[1]
    assert isinstance(second, Trajectories) and len(second) == 1
    assert second.names == ("run,b",)
    assert torch.equal(second.t[0], data.t[1])
    assert [d.names[0] for d in data] == ["run a", "run,b"]
    assert data[-1].names == ("run,b",)


def test_slices_and_index_lists_give_subsets_in_that_order():
    data = shared(R=5)
    assert data[1:3].names == (1, 2)
    assert data[::2].names == (0, 2, 4)
    assert data[[4, 0]].names == (4, 0)


def test_an_index_out_of_range_raises_index_error():
    with pytest.raises(IndexError, match="index 5 is out of range for 4 trajectories"):
        shared()[5]


def test_stacked_returns_batched_tensors_on_a_shared_grid():
    data = shared(R=3, T=6)
    t, u, mask = data.stacked()
    assert t.shape == (6,) and u.shape == (3, 6, 2) and mask.shape == (3, 6, 2)
    assert torch.equal(u[1], data.u[1])


def test_stacked_is_none_for_ragged_grids_and_for_equal_lengths_on_different_grids():
    assert ragged().stacked() is None
    data = Trajectories([np.array([0.0, 1.0]), np.array([0.0, 2.0])], np.ones((2, 2, 1)))
    assert data.stacked() is None


def test_first_observed_skips_missing_leading_values_and_is_nan_when_never_observed():
    u = [np.array([[NAN, NAN], [2.0, NAN], [3.0, NAN]]), np.array([[5.0, 6.0]])]
    data = Trajectories([np.arange(3.0), np.array([0.0])], u, states=("x", "y"))
    first = data.first_observed()
    assert first.shape == (2, 2)
    assert first[0, 0] == 2.0 and math.isnan(first[0, 1])
    assert first[1].tolist() == [5.0, 6.0]


def test_scale_is_the_std_of_observed_values_and_one_where_that_is_zero():
    u = np.array([[1.0, 7.0, NAN], [3.0, 7.0, 2.0], [NAN, 7.0, NAN], [5.0, 7.0, NAN]])
    scale = Trajectories(np.arange(4.0), u).scale()
    expected_x = np.std([1.0, 3.0, 5.0])  # population std of the observed x values
    torch.testing.assert_close(scale, torch.tensor([expected_x, 1.0, 1.0], dtype=torch.float64))


def test_repr_summarises_trajectories_states_points_time_range_and_missing_fraction():
    text = repr(ragged())
    for part in ("2 trajectories", "'run a'", "2 states ('x', 'y')", "3-4 points", "t in [0, 4]"):
        assert part in text
    assert "21.4% missing" in text  # 3 of 14 entries are NaN
    assert "1 trajectory;" in repr(ragged()[0])
    assert "10 points each (one shared grid)" in repr(shared())


def test_to_float32_casts_u_but_keeps_time_in_float64():
    data = ragged().to(dtype=torch.float32)
    assert data.dtype == torch.float32 and data.u[1].dtype == torch.float32
    assert data.t[0].dtype == torch.float64
    assert data.first_observed().dtype == data.scale().dtype == torch.float32
    assert data.mask[1].tolist() == ragged().mask[1].tolist()
    assert "float32 on cpu" in repr(data)
    assert data.to(device="cpu").device == torch.device("cpu")


def test_to_rejects_a_dtype_that_cannot_hold_nan():
    with pytest.raises(InputError, match=r"Trajectories.to: dtype must be a floating-point"):
        ragged().to(dtype=torch.int64)


# ------------------------------------------------------------------------- splits


def test_split_by_trajectory_is_disjoint_complete_and_reproducible_by_seed():
    data = shared(R=10)
    train, val = data.split("trajectory", fraction=0.3, seed=3)
    assert len(train) == 7 and len(val) == 3
    assert set(train.names).isdisjoint(val.names)
    assert set(train.names) | set(val.names) == set(range(10))
    assert list(train.names) == sorted(train.names)  # original order kept
    again = data.split("trajectory", fraction=0.3, seed=3)
    assert again[1].names == val.names
    seeds = {data.split("trajectory", fraction=0.3, seed=s)[1].names for s in range(10)}
    assert len(seeds) > 1
    assert torch.equal(val[0].u[0], data[val.names[0]].u[0])


def test_split_by_trajectory_keeps_at_least_one_on_each_side():
    train, val = shared(R=2).split("trajectory", fraction=0.01)
    assert len(train) == len(val) == 1
    train, val = shared(R=2).split("trajectory", fraction=0.99)
    assert len(train) == len(val) == 1


def test_split_by_time_holds_out_the_last_fraction_of_each_trajectory():
    data = ragged()
    train, val = data.split("time", fraction=0.5)
    assert train.n_points == (1, 2) and val.n_points == (2, 2)  # 0.5 * 3 = 1.5 rounds up to 2
    assert train.names == val.names == data.names
    for i in range(len(data)):
        assert torch.equal(torch.cat([train.t[i], val.t[i]]), data.t[i])
        assert float(train.t[i][-1]) < float(val.t[i][0])
    big_train, big_val = shared(R=2, T=10).split("time", fraction=0.2, seed=99)
    assert big_train.n_points == (8, 8) and big_val.n_points == (2, 2)
    assert big_train.stacked() is not None


def test_split_by_time_allows_a_validation_part_with_nothing_observed():
    u = np.array([[1.0], [2.0], [NAN]])
    _, val = Trajectories(np.arange(3.0), u).split("time", fraction=0.2)
    assert not bool(val.mask[0].any())


def test_split_of_one_trajectory_by_trajectory_is_refused_with_the_alternative():
    with pytest.raises(InputError, match=r"at least 2 trajectories; found 1. Use by='time'"):
        ragged()[0].split("trajectory")


def test_split_by_time_of_a_one_point_trajectory_names_it():
    data = Trajectories([np.arange(3.0), np.array([0.0])], [np.ones((3, 1)), np.ones((1, 1))])
    with pytest.raises(InputError, match="trajectory 1 has 1"):
        data.split("time")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, float("nan"), "half"])
def test_split_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(InputError, match="fraction must be between 0 and 1"):
        shared().split("time", fraction=fraction)


def test_split_by_an_unknown_rule_suggests_the_nearest():
    with pytest.raises(InputError, match="unknown by='times'. Did you mean 'time'"):
        shared().split("times")


# ------------------------------------------------------------------------- files


def test_csv_round_trip_reproduces_the_data_bit_for_bit(tmp_path):
    data = ragged()
    path = tmp_path / "data.csv"
    data.to_csv(path)
    assert_same(Trajectories.from_csv(path, trajectory="trajectory"), data)
    assert path.read_text().splitlines()[0] == "trajectory,t,x,y"
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]  # no temporary file left


def test_csv_round_trip_restores_integer_trajectory_ids_and_float32_values(tmp_path):
    data = shared(R=3).to(dtype=torch.float32)
    data.to_csv(tmp_path / "d.csv", time="time", trajectory="run")
    back = Trajectories.from_csv(tmp_path / "d.csv", time="time", trajectory="run")
    assert back.names == (0, 1, 2)
    assert_same(back.to(dtype=torch.float32).to(dtype=torch.float64), data.to(dtype=torch.float64))


def test_to_csv_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("old")
    shared(R=1).to_csv(path)
    assert_same(Trajectories.from_csv(path, trajectory="trajectory"), shared(R=1))


def test_to_csv_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        shared().to_csv(tmp_path / "nope" / "d.csv")


def test_to_csv_with_a_column_name_that_is_also_a_state_is_refused(tmp_path):
    with pytest.raises(InputError, match="state column 'x' clashes with the time column"):
        shared().to_csv(tmp_path / "d.csv", time="x")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(st.floats(allow_infinity=False, width=64), st.just(NAN)),
            min_size=2,
            max_size=2,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_csv_round_trip_holds_for_any_finite_or_missing_values(rows):
    u = np.array(rows, dtype=np.float64)
    u[0, :] = 1.0  # keep every state observed
    data = Trajectories(np.cumsum(np.full(len(rows), 0.1)), u, states=("a", "b"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.csv"
        data.to_csv(path)
        assert_same(Trajectories.from_csv(path, trajectory="trajectory"), data)


def test_from_csv_reads_long_format_with_missing_cells_and_skips_text_columns():
    data = Trajectories.from_csv(FIXTURE, time="t", trajectory="run")
    assert data.states == ("x", "y")  # 'note' holds only text, so it is not a state
    assert data.names == ("A", "B")
    assert data.n_points == (4, 3)
    assert data.mask[0][:, 0].tolist() == [True, True, False, True]
    assert data.mask[1][:, 1].tolist() == [True, False, True]
    assert data.t[1].tolist() == [0.0, 0.5, 1.0]


def test_from_csv_with_states_reads_only_those_columns():
    data = Trajectories.from_csv(FIXTURE, states=["y"], trajectory="run")
    assert data.states == ("y",)
    assert data.u[0][:, 0].tolist() == [1.0, 0.9, 0.85, 0.8]


def test_from_csv_gathers_interleaved_rows_per_trajectory_in_file_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,t,x\n2,0,1\n1,0,10\n2,1,2\n1,1, 11 \n\n2,2,NA\n")
    data = Trajectories.from_csv(path, trajectory="id")
    assert data.names == (2, 1)  # integer ids become ints, in order of first appearance
    assert data.u[0][:, 0].tolist()[:2] == [1.0, 2.0] and math.isnan(data.u[0][2, 0])
    assert data.u[1][:, 0].tolist() == [10.0, 11.0]


def test_from_csv_without_a_trajectory_column_is_one_trajectory(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("\ufefftime,x,y\n0,1,2\n1,3,\n")  # a BOM, as spreadsheet programs write
    data = Trajectories.from_csv(path, time="time")
    assert len(data) == 1 and data.states == ("x", "y") and data.names == (0,)


def test_npz_round_trip_for_shared_and_ragged_grids(tmp_path):
    for name, data in (("shared.npz", shared(R=3)), ("ragged.npz", ragged())):
        data.save_npz(tmp_path / name)
        assert_same(Trajectories.from_npz(tmp_path / name), data)
    with np.load(tmp_path / "shared.npz") as f:
        assert f["u"].shape == (3, 10, 2) and f["t"].shape == (10,)


def test_from_npz_reads_a_plain_numpy_archive_and_names_or_selects_states(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, time=np.linspace(0, 1, 4), obs=np.ones((2, 4, 3)))
    data = Trajectories.from_npz(path, t="time", u="obs", states=("a", "b", "c"))
    assert data.states == ("a", "b", "c") and len(data) == 2
    shared(R=2).save_npz(tmp_path / "named.npz")
    assert Trajectories.from_npz(tmp_path / "named.npz", states=["y"]).states == ("y",)


def test_from_npz_reads_one_grid_per_trajectory_as_a_2d_t(tmp_path):
    path = tmp_path / "grids.npz"
    np.savez(path, t=np.array([[0.0, 1.0], [0.0, 2.0]]), u=np.ones((2, 2, 1)))
    data = Trajectories.from_npz(path)
    assert data.tspan(1) == (0.0, 2.0)


def test_from_npz_with_a_missing_key_suggests_the_nearest(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, times=np.arange(3.0), u=np.ones((3, 1)))
    with pytest.raises(InputError, match=r"no array 't'.*Did you mean 'times'"):
        Trajectories.from_npz(path)


def test_from_npz_of_a_file_that_is_not_an_archive_says_so(tmp_path):
    (tmp_path / "d.npz").write_text("hello")
    with pytest.raises(InputError, match="not a readable NPZ archive"):
        Trajectories.from_npz(tmp_path / "d.npz")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(InputError, match="found a single .npy array"):
        Trajectories.from_npz(tmp_path / "one.npy")


def test_from_dataframe_reads_what_from_csv_reads():
    pd = pytest.importorskip("pandas", reason="pandas is optional; the DataFrame path needs it")
    df = pd.read_csv(FIXTURE)
    assert_same(
        Trajectories.from_dataframe(df, time="t", trajectory="run"),
        Trajectories.from_csv(FIXTURE, time="t", trajectory="run"),
    )
    numeric_ids = pd.DataFrame({"t": [0.0, 1.0, 0.0], "x": [1.0, None, 2.0], "k": [7, 7, 8]})
    assert Trajectories.from_dataframe(numeric_ids, trajectory="k").names == (7, 8)


def test_from_dataframe_names_a_non_numeric_cell_by_its_row_label():
    pd = pytest.importorskip("pandas", reason="pandas is optional; the DataFrame path needs it")
    df = pd.DataFrame({"t": [0.0, 1.0], "x": ["1.5", "oops"]}, index=["r1", "r2"])
    with pytest.raises(InputError, match=r"column 'x' must hold numbers.*'oops' at row 'r2'"):
        Trajectories.from_dataframe(df, states=["x"])


def test_from_dataframe_without_pandas_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(BackendUnavailableError, match="needs pandas.*pip install pandas"):
        Trajectories.from_dataframe(object())


def test_from_dataframe_of_something_else_is_refused():
    pytest.importorskip("pandas", reason="pandas is optional; the DataFrame path needs it")
    with pytest.raises(InputError, match="df must be a pandas DataFrame; found dict"):
        Trajectories.from_dataframe({"t": [0.0]})


# ------------------------------------------------------------------------- bad data: arrays


def test_times_not_strictly_increasing_name_the_trajectory_and_index():
    t = [np.array([0.0, 1.0]), np.array([0.0, 1.0, 1.0])]
    with pytest.raises(InputError, match=r"trajectory 'b' \(index 1\) has t\[1\]=1.0 followed"):
        Trajectories(t, [np.ones((2, 1)), np.ones((3, 1))], names=["a", "b"])


def test_non_finite_times_name_the_trajectory_and_index():
    with pytest.raises(InputError, match=r"times must be finite; trajectory 0 has t\[2\]=inf"):
        Trajectories([0.0, 1.0, math.inf], np.ones((3, 1)))


def test_mismatched_lengths_of_t_and_u_name_the_trajectory():
    t = [np.arange(3.0), np.arange(4.0)]
    with pytest.raises(InputError, match="trajectory 1 has 4 times in t but 3 rows in u"):
        Trajectories(t, [np.ones((3, 1)), np.ones((3, 1))])


def test_r_trajectories_of_one_state_passed_as_2d_get_the_right_shape_in_the_message():
    with pytest.raises(InputError, match=r"pass u of shape \(R, T, 1\)"):
        Trajectories(np.arange(5.0), np.ones((3, 5)))


def test_a_different_number_of_grids_and_trajectories_is_named():
    with pytest.raises(InputError, match="found 2 time grids in t and 3 trajectories in u"):
        Trajectories([np.arange(2.0)] * 2, [np.ones((2, 1))] * 3)


def test_trajectories_with_different_states_are_named():
    with pytest.raises(InputError, match="trajectory 1 has 3 columns but trajectory 0 has 2"):
        Trajectories([0.0, 1.0], [np.ones((2, 2)), np.ones((2, 3))])


def test_an_all_nan_trajectory_is_named():
    u = [np.ones((2, 1)), np.full((2, 1), NAN)]
    with pytest.raises(InputError, match=r"trajectory 'b' \(index 1\) has no observed value"):
        Trajectories([0.0, 1.0], u, names=["a", "b"])


def test_a_state_observed_in_no_trajectory_is_named():
    u = np.stack([np.ones(3), np.full(3, NAN)], axis=1)
    with pytest.raises(InputError, match="state 'y' has no observed value in any trajectory"):
        Trajectories(np.arange(3.0), u, states=("x", "y"))


def test_inf_in_u_names_the_trajectory_row_and_state():
    u = np.ones((3, 2))
    u[2, 1] = -math.inf
    with pytest.raises(InputError, match=r"trajectory 0 has -inf at row 2, column 1 \(state 'y'\)"):
        Trajectories(np.arange(3.0), u, states=("x", "y"))


def test_non_numeric_arrays_are_refused_with_the_text_found():
    with pytest.raises(InputError, match=r"u must be numeric.*'abc'"):
        Trajectories([0.0, 1.0], [["1"], ["abc"]])


def test_empty_data_is_refused():
    with pytest.raises(InputError, match="has no time points"):
        Trajectories([], [])
    with pytest.raises(InputError, match="at least one column"):
        Trajectories([0.0, 1.0], np.ones((2, 0)))


def test_states_of_the_wrong_length_or_repeated_are_refused():
    with pytest.raises(InputError, match=r"found 1 names \('x',\) for 2 columns"):
        Trajectories([0.0, 1.0], np.ones((2, 2)), states=("x",))
    with pytest.raises(InputError, match="'x' appears more than once"):
        Trajectories([0.0, 1.0], np.ones((2, 2)), states=("x", "x"))


def test_trajectory_names_of_the_wrong_length_or_repeated_are_refused():
    with pytest.raises(InputError, match="found 1 names for 2 trajectories"):
        Trajectories([0.0, 1.0], np.ones((2, 2, 1)), names=["a"])
    with pytest.raises(InputError, match="names must be unique; 'a'"):
        Trajectories([0.0, 1.0], np.ones((2, 2, 1)), names=["a", "a"])


def test_u_with_too_many_dimensions_is_refused_with_its_shape():
    with pytest.raises(InputError, match=r"found shape \(1, 2, 2, 1\)"):
        Trajectories([0.0, 1.0], np.ones((1, 2, 2, 1)))


# ------------------------------------------------------------------------- bad data: files


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


def test_csv_times_not_increasing_name_both_lines_and_the_trajectory(tmp_path):
    path = write(tmp_path, "run,t,x\na,0,1\nb,0,1\na,2,1\na,1.5,1\n")
    with pytest.raises(
        InputError,
        match=r"trajectory 'a' must be strictly increasing; found t=1.5 at line 5 "
        r"after t=2.0 at line 4",
    ):
        Trajectories.from_csv(path, trajectory="run")


def test_csv_with_several_trajectories_but_no_id_column_hints_at_trajectory(tmp_path):
    with pytest.raises(
        InputError, match=r"t=0.0 at line 6 after t=1.5 at line 5.*pass trajectory="
    ):
        Trajectories.from_csv(FIXTURE.parent / "lv_two_runs.csv", states=["x"])


def test_csv_wrong_time_column_suggests_the_nearest(tmp_path):
    path = write(tmp_path, "time,x\n0,1\n")
    with pytest.raises(InputError, match=r"no time column 't'. Did you mean 'time'\?"):
        Trajectories.from_csv(path)


def test_csv_wrong_state_column_suggests_the_nearest(tmp_path):
    with pytest.raises(InputError, match=r"no state column 'X'. Did you mean 'x'\?"):
        Trajectories.from_csv(FIXTURE, states=["X"], trajectory="run")


def test_csv_wrong_trajectory_column_suggests_the_nearest():
    with pytest.raises(InputError, match=r"no trajectory id column 'runs'. Did you mean 'run'\?"):
        Trajectories.from_csv(FIXTURE, trajectory="runs")


def test_csv_non_numeric_cell_names_the_line_column_and_text(tmp_path):
    path = write(tmp_path, "t,x,y\n0,1,2\n1,2,3\n2,1.2.3,4\n")
    with pytest.raises(InputError, match=r"column 'x' must hold numbers.*found '1.2.3' at line 4"):
        Trajectories.from_csv(path)


def test_csv_text_in_a_requested_state_column_names_the_line(tmp_path):
    with pytest.raises(InputError, match=r"column 'note' must hold numbers.*'start' at line 2"):
        Trajectories.from_csv(FIXTURE, states=["x", "note"], trajectory="run")


def test_csv_missing_time_names_the_line(tmp_path):
    path = write(tmp_path, "t,x\n0,1\n,2\n")
    with pytest.raises(
        InputError, match="time column 't' must hold a finite number.*empty cell at line 3"
    ):
        Trajectories.from_csv(path)


def test_csv_infinite_value_names_the_line_and_column(tmp_path):
    path = write(tmp_path, "t,x,y\n0,1,2\n1,2,-Infinity\n")
    with pytest.raises(
        InputError, match=r"column 'y' must be finite or missing; found '-Infinity' at line 3"
    ):
        Trajectories.from_csv(path)


def test_csv_all_nan_trajectory_is_named(tmp_path):
    path = write(tmp_path, "run,t,x\na,0,1\nb,0,\nb,1,nan\n")
    with pytest.raises(InputError, match="trajectory 'b' \\(index 1\\) has no observed value"):
        Trajectories.from_csv(path, trajectory="run")


def test_csv_all_nan_state_column_is_named(tmp_path):
    path = write(tmp_path, "t,x,y\n0,1,\n1,2,\n")
    with pytest.raises(InputError, match="state 'y' has no observed value in any trajectory"):
        Trajectories.from_csv(path, states=["x", "y"])


def test_csv_row_of_the_wrong_width_names_the_line(tmp_path):
    path = write(tmp_path, "t,x\n0,1\n1,2,3\n")
    with pytest.raises(InputError, match="every row must have 2 cells.*line 3 has 3"):
        Trajectories.from_csv(path)


def test_csv_missing_trajectory_id_names_the_line(tmp_path):
    path = write(tmp_path, "run,t,x\na,0,1\n,1,2\n")
    with pytest.raises(InputError, match="trajectory id column 'run' is empty at line 3"):
        Trajectories.from_csv(path, trajectory="run")


def test_csv_empty_file_header_only_and_missing_file_are_refused(tmp_path):
    with pytest.raises(InputError, match="the file is empty"):
        Trajectories.from_csv(write(tmp_path, ""))
    with pytest.raises(InputError, match="header but no data rows"):
        Trajectories.from_csv(write(tmp_path, "t,x\n"))
    with pytest.raises(InputError, match="no such file"):
        Trajectories.from_csv(tmp_path / "absent.csv")


def test_csv_with_only_text_columns_besides_time_asks_for_states(tmp_path):
    path = write(tmp_path, "t,label\n0,a\n1,b\n")
    with pytest.raises(InputError, match=r"no numeric state column.*Pass states="):
        Trajectories.from_csv(path)


def test_csv_repeated_header_names_are_refused(tmp_path):
    path = write(tmp_path, "t,x,x\n0,1,2\n")
    with pytest.raises(InputError, match="'x' appears more than once"):
        Trajectories.from_csv(path)


def test_every_bad_data_error_is_a_value_error_too(tmp_path):
    with pytest.raises(ValueError):
        Trajectories([0.0, 0.0], np.ones((2, 1)))
