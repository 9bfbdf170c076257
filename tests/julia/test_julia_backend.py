"""The Python half of the Julia backend: names, options, parameter layout, marshalling,
gradients wiring, errors when Julia is absent, import laziness and `info`.

Where a Julia call is needed, the ``fake_julia`` fixture stands in for UDEBridge (see
fake_udebridge.py): it runs the *generated* code through the tree-sitter interpreter and
scipy, in Julia's memory layout, so these tests check everything but Julia itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ude_bridge as ub
from ude_bridge.backends import julia_backend as jb
from ude_bridge.backends import julia_runtime as jr
from ude_bridge.errors import BackendUnavailableError, InputError, UnknownMethodError

from .julia_models import lotka_volterra, lv_ude, torch_params, torch_rhs
from .julia_subset import parse

ROOT = Path(__file__).resolve().parents[2]
UDEBRIDGE_JL = (ROOT / "julia" / "UDEBridge.jl").read_text()


def lv_problem(u0=(1.0, 0.8), tspan=(0.0, 3.0), requires_grad=False, system=None):
    system = system or lv_ude(hidden=(6, 6))
    u0 = torch.tensor(u0, dtype=torch.float64, requires_grad=requires_grad)
    return ub.ODEProblem(torch_rhs(system), u0, tspan, torch_params(system, requires_grad))


@pytest.fixture
def no_julia(monkeypatch):
    """Behave as on a machine without the julia extra, whatever is installed here."""
    monkeypatch.setattr(jr, "_missing_packages", lambda: ["juliacall", "juliapkg"])


# --------------------------------------------------------------------------- names


def test_every_torch_engine_method_name_is_a_julia_method_name():
    assert set(ub.solve.__globals__["get_backend"]("torch").methods()) <= set(jb.JULIA_METHODS)


@pytest.mark.parametrize("name", ["Rosenbrock23", "Rodas4", "Rodas5P", "KenCarp4", "FBDF"])
def test_stiff_methods_are_offered_under_their_differentialequations_names(name):
    assert name in jb.JuliaBackend().methods()


def test_a_misspelt_method_is_refused_with_a_suggestion_before_julia_starts(no_julia):
    with pytest.raises(UnknownMethodError, match="Did you mean 'Rodas5P'"):
        ub.solve(lv_problem(), "rodas5p", backend="julia")


def test_sensealg_names_map_with_an_optional_vjp():
    assert jb._sensealg("backprop", "w") == ("backprop", "EnzymeVJP")
    assert jb._sensealg("GaussAdjoint(ReverseDiffVJP)", "w") == ("GaussAdjoint", "ReverseDiffVJP")
    # the torch backend's checkpointed interpolating adjoint has the same name here
    name = "InterpolatingAdjoint(checkpointing=true)"
    assert jb._sensealg(name, "w") == (name, "EnzymeVJP")
    with pytest.raises(InputError, match="Did you mean 'GaussAdjoint'"):
        jb._sensealg("gaussadjoint", "w")
    with pytest.raises(InputError, match="unknown VJP 'Tracker'"):
        jb._sensealg("adjoint(Tracker)", "w")


def test_every_python_sensealg_name_is_known_to_the_julia_module():
    body = UDEBRIDGE_JL[UDEBRIDGE_JL.index("function sensitivity(") :]
    known = set(re.findall(r'"(\w+)"', UDEBRIDGE_JL[UDEBRIDGE_JL.index("const ADJOINTS") :]))
    for name in jb.SENSEALGS:
        assert f'name == "{name}"' in body or name in known, name
    for vjp in jb._VJPS:
        assert f'"{vjp}"' in UDEBRIDGE_JL, vjp


def _julia_keywords(function: str) -> set[str]:
    start = UDEBRIDGE_JL.index(f"function {function}(")
    signature = UDEBRIDGE_JL[start : UDEBRIDGE_JL.index(")\n", start)]
    return set(re.findall(r"(\w+) =", signature.split(";", 1)[1]))


def test_python_option_names_are_the_julia_keywords():
    kwargs = jb._julia_kwargs(lv_problem(), "Tsit5", {"rtol": 1e-6, "atol": 1e-6}, "w")
    assert set(kwargs) | {"saveat", "dense"} <= _julia_keywords("solve_kwargs")


def test_every_julia_entry_point_the_backend_calls_is_defined_and_exported():
    names = set()

    def walk(node):
        if node.type == "function_definition":
            call = node.named_children[0].named_children[0]
            if call.type == "where_expression":
                call = call.named_children[0]
            names.add(call.named_children[0].text.decode())
        for child in node.children:
            walk(child)

    walk(parse(UDEBRIDGE_JL).root_node)
    called = {"load_model", "solve_arrays", "solve_ensemble", "solve_and_pullback",
              "solve_and_pullback_batch", "interpolate", "versions"}  # fmt: skip
    assert called <= names
    exported = set(re.findall(r"^export (.*)$", UDEBRIDGE_JL, re.M)[0].split(", "))
    exported |= set(re.findall(r"^export (.*)$", UDEBRIDGE_JL, re.M)[1].split(", "))
    assert called <= exported


def test_euler_without_dt_is_refused_because_julia_has_it_fixed_step_only():
    with pytest.raises(InputError, match="'Euler' is fixed-step in DifferentialEquations.jl"):
        jb._julia_kwargs(lv_problem(), "Euler", {"dt": None, "adaptive": None}, "solve")


def test_options_map_to_julia_values():
    opts = {"rtol": 1e-8, "atol": torch.tensor([1e-9, 1e-7]), "dt": 0.1, "adaptive": False,
            "max_steps": 50, "dtmin": 0.0}  # fmt: skip
    kw = jb._julia_kwargs(lv_problem(), "RK4", opts, "solve")
    assert kw["rtol"] == 1e-8 and kw["max_steps"] == 50 and kw["adaptive"] is False
    assert kw["dtmin"] is None  # 0 means "DiffEq's default", not a literal dtmin=0
    np.testing.assert_array_equal(kw["atol"], [1e-9, 1e-7])


# --------------------------------------------------------------------------- models -> p


def test_system_of_finds_the_system_on_f_or_on_its_owner():
    system = lotka_volterra()
    f = torch_rhs(system)
    assert jb.system_of(f) is system

    class Model:
        def system(self):
            return system

        def rhs(self, t, u, p):
            return u

    assert jb.system_of(Model().rhs) is system
    assert jb.system_of(lambda t, u, p: u) is None


def test_flat_params_from_the_tuple_layout_equal_the_documented_vector():
    problem = lv_problem()
    code = jb._code_for(problem, "w")
    flat = jb._flat_params(problem, code, "w")
    np.testing.assert_array_equal(flat.numpy(), jb.system_of(problem.f).flat_parameters())


def test_flat_params_accept_one_flat_tensor_and_per_trajectory_rows():
    problem = lv_problem()
    code = jb._code_for(problem, "w")
    flat = jb._flat_params(problem, code, "w")
    assert jb._flat_params(problem.remake(params=flat), code, "w") is not None
    batched = problem.remake(u0=torch.ones(3, 2), params=flat.repeat(3, 1))
    assert jb._flat_params(batched, code, "w").shape == (3, code.n_parameters)


def test_params_of_the_wrong_shape_name_the_slot():
    problem = lv_problem()
    code = jb._code_for(problem, "w")
    params = list(problem.params)
    params[2] = torch.zeros(5, 2)
    with pytest.raises(InputError, match=r"parameter 'U.W0' must have shape \(6, 2\)"):
        jb._flat_params(problem.remake(params=tuple(params)), code, "w")
    with pytest.raises(InputError, match="params must be a tuple of 8 tensors"):
        jb._flat_params(problem.remake(params=tuple(params[:3])), code, "w")


# --------------------------------------------------------------------------- absent Julia


def _assert_install_message(message: str) -> None:
    assert 'pip install "ude-bridge[julia]"' in message
    assert "Julia 1.10" in message
    assert "PYTHON_JULIAPKG_EXE" in message


def test_require_julia_says_what_is_missing_and_how_to_get_it(no_julia):
    with pytest.raises(BackendUnavailableError) as err:
        jb.require_julia("solve")
    assert str(err.value).startswith("solve: backend 'julia' needs the Python packages")
    assert "juliacall and juliapkg are not installed" in str(err.value)
    _assert_install_message(str(err.value))


def test_solve_with_backend_julia_fails_at_once_with_the_install_message(no_julia):
    with pytest.raises(BackendUnavailableError) as err:
        ub.solve(lv_problem(), "Tsit5", saveat=[0.0, 1.0], backend="julia")
    _assert_install_message(str(err.value))


def test_the_backend_and_the_autograd_entry_refuse_at_once(no_julia):
    problem = lv_problem()
    opts = {"saveat": torch.tensor([0.0, 1.0])}
    with pytest.raises(BackendUnavailableError, match=r"solve\(backend='julia'"):
        jb.JuliaBackend().solve(problem, "Tsit5", opts)
    with pytest.raises(BackendUnavailableError, match="ude-bridge"):
        jb.julia_solve_autograd(problem, "Tsit5", opts)


def test_pysr_absence_gets_the_same_install_message(monkeypatch):
    monkeypatch.setattr(jr, "_find_spec", lambda name: None)
    assert not jb.pysr_available()
    with pytest.raises(BackendUnavailableError) as err:
        jb.require_pysr("discover(method='pysr')")
    assert "pysr and juliacall and juliapkg are not installed" in str(err.value)
    _assert_install_message(str(err.value))
    with pytest.raises(BackendUnavailableError):
        jb.import_pysr("discover")


def test_de_needs_julia_and_diffeqpy(monkeypatch, no_julia):
    import ude_bridge.julia as ubj

    assert not ubj.is_available()
    with pytest.raises(BackendUnavailableError, match=r"ude_bridge.julia.de\(\)"):
        ubj.de()
    monkeypatch.setattr(jr, "_missing_packages", lambda: [])
    monkeypatch.setattr(jr, "_find_spec", lambda name: None)
    with pytest.raises(BackendUnavailableError, match="diffeqpy must be installed"):
        ubj.de()


def test_fit_with_backend_julia_fails_at_once(no_julia):
    fit = getattr(ub, "fit", None)
    if fit is None or not hasattr(ub, "UDE"):
        pytest.skip("ub.fit / ub.UDE are not wired yet")
    model = ub.UDE(equations={"x": "-k*x"}, params={"k": 1.0})
    data = ub.Trajectories(np.linspace(0, 1, 5), np.exp(-np.linspace(0, 1, 5))[:, None])
    with pytest.raises(BackendUnavailableError) as err:
        fit(model, data, backend="julia")
    _assert_install_message(str(err.value))


# --------------------------------------------------------------------------- laziness

_FAKES = {
    # a juliacall that must never be imported by `import ude_bridge` and friends
    "juliacall/__init__.py": "raise ImportError('juliacall was imported')\n",
    "juliapkg/__init__.py": "",
    "juliapkg/state.py": "STATE = {'project': None, 'meta': None}\n",
}


def _fake_site(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _run(code: str, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    for key in ("PYTHON_JULIACALL_HANDLE_SIGNALS", "PYTHON_JULIACALL_THREADS"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_importing_ude_bridge_never_imports_juliacall_even_when_installed(tmp_path):
    site = _fake_site(tmp_path, _FAKES)
    out = _run(
        """
        import sys
        import ude_bridge as ub
        import ude_bridge.julia
        from ude_bridge.backends import julia_backend as jb
        from ude_bridge.codegen import to_julia
        backend = jb.JuliaBackend()
        assert backend.is_available(), "the fake juliacall should be found by its spec"
        backend.methods(); jb.info(); jb.format_info(jb.info())
        assert "juliacall" not in sys.modules, "juliacall was imported"
        print("ok")
        """,
        site,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


_RECORDING_JULIACALL = """
import sys, warnings
main = sys.modules["__main__"]
main.events.append("juliacall imported")
if "torch" in sys.modules:  # the real juliacall warns like this
    warnings.warn("`torch` was loaded before the juliacall. This may cause a segfault.")
class _Main:
    pass
Main = _Main()
"""


def test_starting_julia_after_torch_warns_before_juliacall_is_imported(tmp_path, monkeypatch):
    site = _fake_site(tmp_path, {"juliacall/__init__.py": _RECORDING_JULIACALL})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(jr, "_missing_packages", lambda: [])
    monkeypatch.delitem(sys.modules, "juliacall", raising=False)
    for key in ("PYTHON_JULIACALL_HANDLE_SIGNALS", "PYTHON_JULIACALL_THREADS"):
        monkeypatch.delenv(key, raising=False)
    events: list[str] = []
    monkeypatch.setattr(sys.modules["__main__"], "events", events, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(
            warnings, "showwarning", lambda m, c, *a, **k: events.append(f"{c.__name__}: {m}")
        )
        try:
            module = jr._start_julia("solve")
        finally:
            sys.modules.pop("juliacall", None)
    assert module.__name__ == "juliacall"
    assert events[0].startswith("JuliaImportOrderWarning"), events
    assert "import juliacall" in events[0] and "78829" in events[0]
    assert events[1:] == ["juliacall imported"], events  # juliacall's own warning is filtered
    assert os.environ["PYTHON_JULIACALL_HANDLE_SIGNALS"] == "yes"
    assert os.environ["PYTHON_JULIACALL_THREADS"] == "auto"


def test_no_warning_when_juliacall_was_imported_first(monkeypatch):
    fake = types.ModuleType("juliacall")
    monkeypatch.setitem(sys.modules, "juliacall", fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jr._start_julia("solve") is fake


# --------------------------------------------------------------------------- fake Julia


def test_a_plain_python_function_is_refused_with_the_alternatives(fake_julia):
    problem = ub.ODEProblem(lambda t, u, p: -u, [1.0], (0.0, 1.0))
    with pytest.raises(InputError, match="must come from a ude_bridge model .* backend='torch'"):
        ub.solve(problem, "Tsit5", backend="julia")


def test_single_solve_equals_the_torch_engine(fake_julia):
    problem = lv_problem()
    ts = torch.linspace(0.0, 3.0, 13)
    kw = {"saveat": ts, "rtol": 1e-10, "atol": 1e-10}
    jl = ub.solve(problem, "Tsit5", backend="julia", **kw)
    ref = ub.solve(problem, "Tsit5", backend="torch", **kw)
    assert jl.backend == "julia" and jl.success and jl.retcode == "Success"
    assert jl.u.shape == (13, 2) and jl.u.is_contiguous()
    torch.testing.assert_close(jl.t, ts)
    # both integrate to ~1e-10 relative; 1e-7 leaves room for the error growth over tspan
    torch.testing.assert_close(jl.u, ref.u, rtol=1e-7, atol=1e-7)


def test_batched_solve_equals_the_torch_engine_per_trajectory(fake_julia):
    problem = lv_problem().remake(u0=torch.tensor([[1.0, 0.8], [0.5, 1.5], [2.0, 0.3]]))
    ts = torch.linspace(0.0, 2.0, 9)
    kw = {"saveat": ts, "rtol": 1e-10, "atol": 1e-10}
    jl = ub.solve(problem, "Tsit5", backend="julia", **kw)
    ref = ub.solve(problem, "Tsit5", backend="torch", **kw)
    assert jl.u.shape == (3, 9, 2)
    assert jl.retcodes == ["Success"] * 3
    torch.testing.assert_close(jl.u, ref.u, rtol=1e-7, atol=1e-7)
    assert fake_julia.calls[-1][2] == "threads"


def test_dense_output_interpolates_through_julia(fake_julia):
    problem = lv_problem()
    sol = ub.solve(problem, "Tsit5", backend="julia", rtol=1e-10, atol=1e-10)
    ref = ub.solve(problem, "Tsit5", saveat=[0.3, 1.7], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sol(torch.tensor([0.3, 1.7])), ref.u, rtol=1e-6, atol=1e-6)
    assert sol(0.3).shape == (2,)


def test_the_model_is_compiled_once_per_distinct_source(fake_julia):
    problem = lv_problem()
    for _ in range(3):
        ub.solve(problem, "Tsit5", saveat=[0.0, 1.0], backend="julia")
    assert fake_julia.calls.count("load_model") == 1


def test_float32_state_comes_back_float32(fake_julia):
    problem = lv_problem()
    problem = problem.remake(u0=problem.u0.float())
    sol = ub.solve(problem, "Tsit5", saveat=[0.0, 1.0], backend="julia")
    assert sol.u.dtype == torch.float32 and sol.t.dtype == torch.float64


def test_julia_retcodes_become_messages(monkeypatch, fake_julia):
    original = fake_julia.solve_arrays

    def failing(*args, **kwargs):
        res = original(*args, **kwargs)
        return {**res, "retcode": "MaxIters", "success": False, "t_reached": 0.5}

    monkeypatch.setattr(fake_julia, "solve_arrays", failing)
    sol = ub.solve(lv_problem(), "Tsit5", saveat=[0.0, 1.0], backend="julia", max_steps=7)
    assert not sol.success
    assert sol.message.startswith(
        "MaxIters: the solver took max_steps=7 steps and stopped at t=0.5"
    )
    with pytest.raises(ub.SolveError, match="MaxIters"):
        ub.solve(lv_problem(), "Tsit5", saveat=[0.0, 1.0], backend="julia", throw=True)


def _expected_param_grads(problem, total):
    """The fake pullback's p̄ = total * [1..P], split into the tuple layout (row-major)."""
    P = sum(p.numel() for p in problem.params)
    flat = total * torch.arange(1.0, P + 1.0, dtype=torch.float64)
    out, k = [], 0
    for p in problem.params:
        out.append(flat[k : k + p.numel()].reshape(p.shape))
        k += p.numel()
    return out


def test_gradients_flow_to_u0_and_every_parameter_slot(fake_julia):
    problem = lv_problem(requires_grad=True)
    ts = torch.linspace(0.0, 1.0, 5)
    w = torch.randn(5, 2)
    u = jb.julia_solve_autograd(problem, "Tsit5", {"saveat": ts, "sensealg": "adjoint"})
    assert u.shape == (5, 2)
    (u * w).sum().backward()
    torch.testing.assert_close(problem.u0.grad, w.sum(0))
    for p, expected in zip(problem.params, _expected_param_grads(problem, w.sum()), strict=True):
        torch.testing.assert_close(p.grad, expected)
    assert fake_julia.calls[-1][2:4] == ("adjoint", "EnzymeVJP")


def test_batched_gradients_keep_trajectories_apart_and_sum_shared_params(fake_julia):
    problem = lv_problem(requires_grad=True)
    u0 = torch.tensor([[1.0, 0.8], [0.5, 1.5], [2.0, 0.3]], requires_grad=True)
    problem = problem.remake(u0=u0)
    ts = torch.linspace(0.0, 1.0, 4)
    w = torch.randn(3, 4, 2)
    sol = ub.solve(problem, "Tsit5", saveat=ts, backend="julia")  # differentiable path
    assert sol.u.shape == (3, 4, 2) and sol.u.requires_grad
    (sol.u * w).sum().backward()
    torch.testing.assert_close(u0.grad, w.sum(1))
    for p, expected in zip(problem.params, _expected_param_grads(problem, w.sum()), strict=True):
        torch.testing.assert_close(p.grad, expected)


def test_per_trajectory_parameters_get_per_trajectory_gradients(fake_julia):
    base = lv_problem()
    code = jb._code_for(base, "w")
    flat = jb._flat_params(base, code, "w").detach()
    P = flat.numel()
    params = flat.repeat(2, 1).requires_grad_(True)
    problem = base.remake(u0=torch.tensor([[1.0, 0.8], [0.5, 1.5]]), params=params)
    w = torch.randn(2, 3, 2)
    u = jb.julia_solve_autograd(problem, "Tsit5", {"saveat": torch.tensor([0.0, 0.5, 1.0])})
    (u * w).sum().backward()
    expected = w.sum((1, 2))[:, None] * torch.arange(1.0, P + 1.0)
    torch.testing.assert_close(params.grad, expected)


def test_a_failed_differentiable_solve_raises_with_the_retcode_message(monkeypatch, fake_julia):
    original = fake_julia.solve_and_pullback

    def failing(*args, **kwargs):
        res = original(*args, **kwargs)
        return {**res, "u": res["u"][:, :2], "retcode": "DtLessThanMin", "t_reached": 0.25}

    monkeypatch.setattr(fake_julia, "solve_and_pullback", failing)
    opts = {"saveat": torch.linspace(0.0, 1.0, 5), "dtmin": 1e-9}
    with pytest.raises(ub.SolveError, match="DtLessThanMin: step size fell below dtmin=1e-09"):
        jb.julia_solve_autograd(lv_problem(requires_grad=True), "Tsit5", opts)


def test_gradients_need_save_times(fake_julia):
    with pytest.raises(InputError, match="saveat must be given"):
        jb.julia_solve_autograd(lv_problem(requires_grad=True), "Tsit5", {"saveat": None})


def test_a_julia_error_becomes_a_solve_error(monkeypatch, fake_julia):
    def boom(*args, **kwargs):
        raise RuntimeError("MethodError: no method matching rhs!(...)")

    monkeypatch.setattr(fake_julia, "solve_arrays", boom)
    with pytest.raises(ub.SolveError, match="Julia raised an error: MethodError"):
        ub.solve(lv_problem(), "Tsit5", saveat=[0.0, 1.0], backend="julia")


def _lv_model():
    from ude_bridge.model import MLP, UDE

    return UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        positive=["alpha"],
        network=MLP(["x", "y"], ["U1", "U2"], hidden=(6,), input_range=(0, 5), seed=1),
    )


def test_model_problems_carry_their_system_for_the_julia_backend():
    problem = _lv_model().problem([1.0, 0.8], (0.0, 1.0))
    if jb.system_of(problem.f) is None:
        pytest.skip(
            "not wired yet: ude_bridge.codegen.to_torch.torch_rhs should set rhs.system = "
            "system so that backend='julia' can translate model.problem(...)"
        )
    assert jb.system_of(problem.f).n_states == 2


def test_a_ude_model_solves_through_julia_like_through_torch(fake_julia):
    model = _lv_model()
    problem = model.problem([1.0, 0.8], (0.0, 2.0))
    if jb.system_of(problem.f) is None:  # until torch_rhs sets it (see the test above)
        problem.f.system = model.system
    kw = {"saveat": torch.linspace(0.0, 2.0, 5), "rtol": 1e-10, "atol": 1e-10}
    with torch.no_grad():  # the model's parameters require grad; values are compared here
        jl = ub.solve(problem, "Tsit5", backend="julia", **kw)
        ref = ub.solve(problem, "Tsit5", backend="torch", **kw)
    torch.testing.assert_close(jl.u, ref.u, rtol=1e-7, atol=1e-7)


# --------------------------------------------------------------------------- info


def test_info_reports_everything_without_starting_julia(monkeypatch, no_julia):
    def forbidden(*args, **kwargs):
        raise AssertionError("info() started Julia")

    monkeypatch.setattr(jr, "udebridge", forbidden)
    data = jb.info()
    assert data["torch"]["version"] == torch.__version__
    assert data["torch"]["threads"] >= 1
    assert set(data) >= {"scipy", "pysindy", "juliacall", "juliapkg", "pysr", "diffeqpy"}
    assert data["julia"]["available"] is False
    text = jb.format_info(data)
    assert text.startswith("torch")
    assert 'pip install "ude-bridge[julia]"' in text


def test_info_with_start_julia_asks_julia_for_versions(fake_julia):
    data = jb.info(start_julia=True)
    assert data["julia"]["running"] == {"julia": "fake", "threads": "1"}


def test_info_names_the_julia_executable_from_the_environment(monkeypatch):
    monkeypatch.setenv("PYTHON_JULIAPKG_EXE", "/opt/julia/bin/julia")
    data = jb.info()
    assert data["julia"]["executable"] == "/opt/julia/bin/julia"
    assert "(from PYTHON_JULIAPKG_EXE)" in jb.format_info(data)


def test_the_julia_module_file_is_found_from_the_package():
    assert jb.julia_source_path().name == "UDEBridge.jl"


def test_the_packaged_udebridge_copy_equals_the_repository_one():
    packaged = ROOT / "ude_bridge" / "_julia" / "UDEBridge.jl"
    if not packaged.is_file():
        pytest.skip("not packaged yet: ude_bridge/_julia/UDEBridge.jl (see pyproject package-data)")
    assert packaged.read_text() == UDEBRIDGE_JL
