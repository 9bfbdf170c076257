"""to_julia: the generated Julia parses, indexes p by the documented layout, and computes
what the model means (checked by the tree-sitter interpreter against numpy references)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy

from ude_bridge.codegen.system import NetworkSpec, SymbolicSystem
from ude_bridge.codegen.to_julia import julia_expression, julia_identifier, to_julia
from ude_bridge.errors import InputError

from .julia_models import ALL_SYSTEMS, lv_ude, mlp, reference_rhs
from .julia_subset import Array1, Interpreter, JuliaSubsetError, syntax_errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(ALL_SYSTEMS))
def test_generated_julia_has_no_syntax_errors(name):
    assert syntax_errors(to_julia(ALL_SYSTEMS[name]()).source) == []


def test_udebridge_module_has_no_syntax_errors():
    assert syntax_errors((ROOT / "julia" / "UDEBridge.jl").read_text()) == []


def test_the_syntax_checker_reports_broken_julia():
    # without this, a parser that accepted anything would make the tests above vacuous
    assert syntax_errors("function f(x)\n    x +\nend\n")
    assert syntax_errors("du[1] = (1, 2")


@pytest.mark.parametrize("name", sorted(ALL_SYSTEMS))
def test_generated_rhs_equals_the_reference_semantics(name):
    system = ALL_SYSTEMS[name]()
    it = Interpreter(to_julia(system).source)
    rng = np.random.default_rng(7)
    # perturb p so that nothing only works for the stored initial values
    p = system.flat_parameters() * (1 + 0.1 * rng.normal(size=system.n_parameters))
    for _ in range(4):
        u = rng.uniform(-0.5, 2.0, size=system.n_states)
        t = float(rng.uniform(0.0, 9.0))
        du = np.full(system.n_states, np.nan)
        assert it["rhs!"](Array1(du), Array1(u), Array1(p), t) is None
        ref = reference_rhs(system, t, u, p)
        # both sides do the same float64 operations up to reassociation: a few ulps
        np.testing.assert_allclose(du, ref, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(it["rhs_static"](Array1(u), Array1(p), t), ref, rtol=1e-13)


ACTIVATIONS = ["tanh", "relu", "gelu", "softplus", "sigmoid", "silu", "rbf"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_matches_its_numpy_definition(activation):
    system = lv_ude(hidden=(6,), activation=activation, seed=3)
    it = Interpreter(to_julia(system).source)
    p = system.flat_parameters()
    u = np.array([0.7, -1.3])
    du = np.zeros(2)
    it["rhs!"](Array1(du), Array1(u), Array1(p), 0.0)
    np.testing.assert_allclose(du, reference_rhs(system, 0.0, u, p), rtol=1e-13, atol=1e-14)


def test_network_output_equals_networkspec_evaluate_with_its_own_weights():
    system = lv_ude(hidden=(5, 4), seed=11)
    net = system.networks[0]
    it = Interpreter(to_julia(system).source)
    u = np.array([1.2, 0.4])
    du = np.zeros(2)
    it["rhs!"](Array1(du), Array1(u), Array1(system.flat_parameters()), 0.0)
    U = net.evaluate(u)
    a, d = system.param_values
    np.testing.assert_allclose(du, [a * u[0] + U[0], -d * u[1] + U[1]], rtol=1e-13)


def test_rhs_reads_exactly_the_parameter_vector_and_nothing_beyond_it():
    system = lv_ude(hidden=(3,))
    it = Interpreter(to_julia(system).source)
    short = Array1(system.flat_parameters()[:-1])
    with pytest.raises(JuliaSubsetError, match="BoundsError"):
        it["rhs!"](Array1(np.zeros(2)), Array1(np.ones(2)), short, 0.0)


def test_layout_constants_and_comment_follow_the_system_layout():
    system = lv_ude(hidden=(4,))
    code = to_julia(system)
    it = Interpreter(code.source)
    assert it["N_STATES"] == 2
    assert it["N_PARAMETERS"] == system.n_parameters == code.n_parameters
    assert it["PARAMETER_NAMES"] == tuple(s.name for s in system.layout())
    assert "#   p[3:10]          U.W0  (4, 2)" in code.source
    assert "(stored raw: value = softplus(raw))" in code.source


def test_symbols_that_clash_with_julia_names_are_renamed():
    code = to_julia(ALL_SYSTEMS["forced_oscillator"]())
    assert code.names == {"u": "v_u", "p": "v_p"}
    assert "v_u = u[1]" in code.source


def test_julia_identifier_keeps_plain_names_and_renames_the_rest():
    taken: set[str] = set()
    assert julia_identifier("alpha", taken) == "alpha"
    assert julia_identifier("end", taken) == "v_end"
    assert julia_identifier("α", taken) == "v__"
    assert julia_identifier("_ub_x", taken) == "v__ub_x"
    assert julia_identifier("alpha", taken) == "v_alpha"  # already taken


@pytest.mark.parametrize(
    ("expr", "code"),
    [
        ("x**2*y", "x ^ 2 * y"),
        ("x/y", "x / y"),
        ("Rational(3, 7)*x", "(3 / 7) * x"),
        ("E*x", "Base.MathConstants.e * x"),
        ("atan2(y, x)", "atan(y, x)"),
        ("erf(x)", "SpecialFunctions.erf(x)"),
        ("-x**2", "-x ^ 2"),
    ],
)
def test_julia_expression_prints_scalar_code(expr, code):
    assert julia_expression(sympy.sympify(expr)) == code


def test_floats_are_printed_with_every_digit_they_need():
    x = sympy.Symbol("x")
    value = 0.1 + 0.2  # 0.30000000000000004: needs 17 significant digits
    assert julia_expression(sympy.Float(value) * x) == "0.30000000000000004 * x"


def test_a_user_torch_module_network_cannot_go_to_julia():
    x, t, U = sympy.symbols("x t U")
    net = NetworkSpec(
        "mine", (x,), (U,), (), "module", 0.0, 1.0, 1.0, kind="module",
        module_parameters=(np.zeros(3),), module_parameter_names=("w",),
    )  # fmt: skip
    system = SymbolicSystem((x,), t, (), (), (U,), networks=(net,))
    with pytest.raises(InputError, match="network 'mine' must be an MLP to run in Julia"):
        to_julia(system)


def test_a_forcing_input_given_as_a_callable_cannot_go_to_julia():
    x, t, F = sympy.symbols("x t F")
    system = SymbolicSystem((x,), t, (), (), (F - x,), inputs=(F,), input_data=(None,))
    with pytest.raises(InputError, match="forcing input 'F' must be given as data"):
        to_julia(system)


def test_an_undefined_function_is_refused_with_the_expression():
    x, t = sympy.symbols("x t")
    system = SymbolicSystem((x,), t, (), (), (sympy.Function("g")(x),))
    with pytest.raises(InputError, match=r"g\(x\) is not"):
        to_julia(system)


def test_an_undeclared_symbol_is_refused():
    x, t, k = sympy.symbols("x t k")
    system = SymbolicSystem((x,), t, (), (), (-k * x,))
    with pytest.raises(InputError, match="equation for 'x' .* found k"):
        to_julia(system)


def test_a_time_symbol_not_named_t_is_bound_to_the_time_argument():
    x, tau, w = sympy.symbols("x tau w")
    system = SymbolicSystem((x,), tau, (w,), (2.0,), (sympy.cos(w * tau) - x,))
    it = Interpreter(to_julia(system).source)
    du = np.zeros(1)
    it["rhs!"](Array1(du), Array1(np.array([0.5])), Array1(np.array([2.0])), 0.3)
    np.testing.assert_allclose(du, [np.cos(0.6) - 0.5], rtol=1e-15)


def test_a_single_input_single_output_network_uses_one_tuples():
    x, t, U = sympy.symbols("x t U")
    net = mlp("n", (x,), (U,), (2,), "tanh", np.random.default_rng(0))
    system = SymbolicSystem((x,), t, (), (), (U,), networks=(net,))
    src = to_julia(system).source
    assert "promote(x)" in src and "return (U,)" in src
    assert syntax_errors(src) == []


# --------------------------------------------------------------------------- real models


def _ude_models():
    from ude_bridge.model import MLP, UDE

    ts = np.linspace(0.0, 4.0, 9)
    return {
        "lv": UDE(
            {"x": "alpha*x + U1", "y": "-delta*y + U2"},
            params={"alpha": 1.3, "delta": 1.8},
            positive=["alpha"],
            network=MLP(
                ["x", "y"],
                ["U1", "U2"],
                hidden=(8, 8),
                input_range=(0, 5),
                output_scale=0.5,
                seed=1,
            ),
        ),  # fmt: skip
        "two_nets_forced": UDE(
            {"x": "-k*x + A + F", "y": "B*exp(-y**2) - c*y"},
            params={"k": 0.5, "c": 2.0},
            fixed=["c"],
            inputs={"F": (ts, np.sin(ts))},
            network=[
                MLP(["x"], ["A"], hidden=(5,), activation="gelu", seed=2),
                MLP(["x*y", "t"], ["B"], hidden=(4, 3), activation="rbf", seed=3),
            ],
        ),
    }


@pytest.mark.parametrize("name", ["lv", "two_nets_forced"])
def test_generated_julia_equals_the_torch_model_it_came_from(name):
    import torch

    model = _ude_models()[name]
    system = model.system()
    it = Interpreter(to_julia(system).source)
    p = torch.cat([x.detach().reshape(-1) for x in model.param_tensors()]).numpy()
    np.testing.assert_array_equal(p, system.flat_parameters())
    rng = np.random.default_rng(5)
    for _ in range(3):
        u, t = rng.uniform(0.1, 3.0, size=2), float(rng.uniform(0.0, 5.0))
        du = np.zeros(2)
        it["rhs!"](Array1(du), Array1(u), Array1(p), t)
        expected = model(t, torch.tensor(u)).detach().numpy()
        # two independent generators of the same float64 arithmetic: a few ulps apart
        np.testing.assert_allclose(du, expected, rtol=1e-12, atol=1e-12)
