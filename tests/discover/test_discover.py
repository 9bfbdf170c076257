"""discover() on a UDE whose network is set by hand, and what the Discovery result offers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy
import torch

import ude_bridge as ub
from ude_bridge.discover import Discovery, Samples, discover, library
from ude_bridge.train import FitResult

from .systems import LV, hand_result, lv_data, lv_ude

LIB = library.polynomial(["x", "y"], degree=3)
x, y = sympy.symbols("x y")


@pytest.fixture(scope="module")
def found() -> Discovery:
    # a 'trained' network with a smooth error of ~1 % outside the library
    return discover(hand_result(error=0.05), library=LIB, points=120)


def test_a_trained_lotka_volterra_network_becomes_its_interaction_terms(found):
    assert set(found.expressions) == {"U1", "U2"}
    for out, value in (("U1", -LV["beta"]), ("U2", LV["gamma"])):
        row = found.table[out]
        assert row.terms == (x * y,)
        # the network's error is a smooth 1 % wobble, so the coefficient is within 1 %
        assert row.coefficients[0] == pytest.approx(value, rel=0.01)
        assert row.complexity == 1 and row.error < 0.05
        assert found.expressions[out] == sympy.Float(row.coefficients[0]) * x * y


def test_the_discovered_model_has_no_networks_and_solves_like_the_truth(found):
    model = found.model
    assert len(model.networks) == 0
    eqs = model.to_sympy()
    assert sympy.simplify(eqs["x"] - (LV["alpha"] * x + found.expressions["U1"])) == 0
    t = torch.linspace(0, 5, 21, dtype=torch.float64)
    data = lv_data()
    sol = ub.solve(model.problem(data.u[0][0], (0.0, 5.0)), saveat=t, rtol=1e-8, atol=1e-8)
    # 1 % coefficient error over about one period: a few % in the states
    assert torch.allclose(sol.u, data.u[0], rtol=0.05, atol=0.05)


def test_parameterized_model_names_each_coefficient(found):
    model, exprs = found.parameterized()
    c1, c2 = sympy.symbols("c_U1_0 c_U2_0")
    assert exprs == {"U1": c1 * x * y, "U2": c2 * x * y}
    values = model.parameters_dict()
    assert values["c_U1_0"] == pytest.approx(found.table["U1"].coefficients[0])
    assert {"alpha", "delta"} <= set(values) and model.fixed == {"alpha", "delta"}


@pytest.mark.slow
def test_refit_reestimates_the_coefficients_against_the_data():
    found = discover(hand_result(error=0.3), library=LIB, points=100)
    before = found.table["U1"].coefficients[0]
    result = found.refit(optimizers=[("lbfgs", 4)])
    assert isinstance(result, FitResult) and len(result.model.networks) == 0
    after = float(found.refit_expressions["U1"].coeff(x * y))
    # noise-free data of the true system: refitting moves the coefficient to -0.9
    assert abs(after + LV["beta"]) < abs(before + LV["beta"]) or abs(after + LV["beta"]) < 1e-4
    assert abs(after + LV["beta"]) < 1e-3


def test_latex_and_saved_files_hold_the_expressions(found, tmp_path):
    latex = found.to_latex(digits=3)
    assert latex.startswith("\\begin{aligned}") and "U_{1} &= - 0.9" in latex
    json_path, tex_path = found.save(tmp_path / "lv")
    saved = json.loads(json_path.read_text())
    assert saved["expressions"]["U1"] == str(found.expressions["U1"])
    assert saved["table"]["U2"]["terms"] == ["x*y"]
    assert saved["pareto"]["U1"][0]["complexity"] == 1
    assert saved["libraries"]["U1"] == list(LIB.names)
    assert tex_path.read_text().strip() == found.to_latex()
    assert "U1 = " in repr(found)


def test_outputs_can_be_discovered_one_at_a_time_and_the_rest_stay_networks():
    found = discover(hand_result(), library=LIB, outputs=["U2"], points=60, select="samples")
    assert set(found.expressions) == {"U2"}
    model = found.model
    assert len(model.networks) == 1 and "U1" in str(model.to_sympy()["x"])


def test_each_output_may_have_its_own_library():
    libs = {"U1": library.custom(["x*y", "x"]), "U2": library.polynomial(["x", "y"], 2)}
    found = discover(hand_result(), library=libs, points=60, select="samples")
    assert found.table["U1"].terms == (x * y,) and found.table["U2"].terms == (x * y,)


def test_plain_sindy_on_data_finds_the_whole_right_hand_side():
    found = discover(lv_data(n=201), library=library.polynomial(["x", "y"], 2))
    assert {str(t) for t in found.table["x"].terms} == {"x", "x*y"}
    assert {str(t) for t in found.table["y"].terms} == {"y", "x*y"}
    model = found.model
    assert [str(s) for s in model.system().states] == ["x", "y"]


def test_an_untrained_ude_with_data_uses_derivatives_of_the_data():
    found = discover(lv_ude(), data=lv_data(n=201), library=LIB)
    assert found.table["U1"].terms == (x * y,) and found.samples.source == "derivative"
    assert found.table["U1"].coefficients[0] == pytest.approx(-LV["beta"], rel=0.01)


# ------------------------------------------------------------------------------- errors


def test_a_model_without_networks_has_nothing_to_discover():
    data = lv_data()
    model = ub.UDE({"x": "x - x*y", "y": "x*y - y"})
    result = FitResult(model, data, [], 0.0, data.first_observed(), {})
    with pytest.raises(ub.InputError, match="the model has no networks"):
        discover(result, library=LIB)


def test_a_library_variable_that_is_not_a_network_input_is_refused():
    net = ub.MLP(["x"], ["U1"], hidden=(4,))
    model = ub.UDE({"x": "x + U1", "y": "-y"}, network=net)
    data = lv_data()
    result = FitResult(model, data, [], 0.0, data.first_observed(), {})
    with pytest.raises(ub.InputError, match="library variable 'y' is not an input of the network"):
        discover(result, library=LIB, points=30)


def test_an_empty_library_is_refused():
    with pytest.raises(ub.InputError, match="no terms"):
        discover(hand_result(), library=library.custom([]))


def test_too_few_sample_points_are_refused_with_the_fix():
    quintic = library.polynomial(["x", "y"], degree=5)  # 21 terms for 21 data points
    with pytest.raises(ub.InputError, match=r"too few sample points: 21 .* \(points=...\)"):
        discover(hand_result(), library=quintic, along="data")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: discover(hand_result(), method="SINDy"), ub.InputError, "Did you mean .sindy."),
        (lambda: discover(hand_result(), outputs=["U3"]), ub.UnknownSymbolError, "'U3'"),
        (lambda: discover(hand_result(), library="poly"), ub.InputError, "library must be"),
        (lambda: discover(lv_ude(), library=LIB), ub.InputError, "needs data="),
        (lambda: discover(42), ub.InputError, "expected the result of ub.fit"),
        (
            lambda: discover(hand_result(), library={"U9": LIB}),
            ub.UnknownSymbolError,
            "not an output being discovered",
        ),
    ],
)
def test_bad_calls_are_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_discovery_without_a_model_cannot_build_one():
    xs = np.linspace(-1, 1, 40)
    found = discover(Samples.from_arrays({"x": xs}, {"U1": 2 * xs}), library=library.custom(["x"]))
    assert float(found.expressions["U1"].coeff(x)) == pytest.approx(2.0)
    with pytest.raises(ub.InputError, match="no model to put the expressions in"):
        _ = found.model


class _CubicError(torch.nn.Module):
    """A network that learned -0.9 xy plus a wrong 0.01 y**3 (a library term)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x_, y_ = z[..., 0], z[..., 1]
        return torch.stack([-0.9 * x_ * y_ * self.gain + 0.01 * y_**3, 0.8 * x_ * y_], dim=-1)


def test_simulating_against_the_data_rejects_a_term_the_network_learned_wrongly():
    data = lv_data()
    result = FitResult(lv_ude(_CubicError()), data, [], 0.0, data.first_observed(), {})
    by_samples = discover(result, library=LIB, points=80, select="samples")
    assert set(by_samples.table["U1"].terms) == {x * y, y**3}  # the samples hold y**3 exactly
    found = discover(result, library=LIB, points=80)  # select="auto": simulate, data decide
    assert found.table["U1"].terms == (x * y,)
    losses = {p.complexity: p.trajectory_loss for p in found.pareto["U1"]}
    assert losses[1] < losses[2]
    assert found.table["U1"].trajectory_loss == losses[1]


def test_selection_by_trajectory_needs_a_model_and_data():
    xs = np.linspace(-1, 1, 40)
    samples = Samples.from_arrays({"x": xs}, {"U1": 2 * xs})
    with pytest.raises(ub.InputError, match="select='trajectory' needs a model and data"):
        discover(samples, library=library.custom(["x"]), select="trajectory")
    with pytest.raises(ub.InputError, match="select must be"):
        discover(samples, library=library.custom(["x"]), select="best")
