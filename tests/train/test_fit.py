"""Training: recovery, masking, checkpoints and resume, determinism, failures, errors."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import ude_bridge as ub

TS = torch.linspace(0, 3, 31, dtype=torch.float64)
U0 = (0.44249296, 4.6280594)


def _lv(t, u, p=None):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], -1)


def _truth(ts=TS, u0=U0):
    prob = ub.ODEProblem(_lv, u0, (float(ts[0]), float(ts[-1])))
    return ub.solve(prob, "Vern9", saveat=ts, rtol=1e-12, atol=1e-12).u


def _param_model(start=1.0):
    return ub.UDE(
        {"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
        params={"alpha": start, "beta": start, "gamma": start, "delta": start},
    )


def _small_ude(seed=0):
    return ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("alpha", "delta"),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(8,), seed=seed),
    )


def test_a_parameter_only_fit_recovers_lotka_volterra_from_clean_data():
    data = ub.Trajectories(TS, _truth(), states=["x", "y"])
    model = ub.UDE(
        {"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
        params={"alpha": 1.1, "beta": 1.1, "gamma": 0.7, "delta": 1.6},
    )
    res = ub.fit(model, data, optimizers=[("lbfgs", 40)], rtol=1e-9, atol=1e-9, progress=False)
    got = model.parameters_dict()
    # clean data and a tight solve: the optimum is the truth to ~1e-6 (the issue asks 1e-4)
    for name, want in {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}.items():
        assert abs(got[name] - want) < 1e-4, (name, got)
    assert res.loss < 1e-9
    assert len(res.history) == 40


def test_missing_values_are_masked_out_of_the_loss():
    u = _truth().clone()
    u_nan = u.clone()
    u_nan[5:9, 0] = math.nan
    u_nan[12, 1] = math.nan
    u_nan[5:9, 0] += 0  # keep NaN
    model = _param_model(1.1)
    a = ub.fit(
        model,
        ub.Trajectories(TS, u_nan, states=["x", "y"]),
        optimizers=[("adam", 1e-3, 1)],
        progress=False,
        normalize=False,
    )
    # garbage where the mask is 0 must change nothing
    u_bad = u_nan.clone()
    u_bad[torch.isnan(u_bad)] = 1e6
    mask_only = ub.Trajectories(TS, u_nan, states=["x", "y"])
    model2 = _param_model(1.1)
    b = ub.fit(model2, mask_only, optimizers=[("adam", 1e-3, 1)], progress=False, normalize=False)
    assert a.history[0]["loss"] == b.history[0]["loss"]
    assert math.isfinite(a.history[0]["loss"])


def test_a_subset_of_observed_states_trains_with_a_given_initial_condition():
    x_only = ub.Trajectories(TS, _truth()[:, :1], states=["x"])
    model = _param_model(1.2)
    with pytest.raises(ub.InputError, match="states y are not observed"):
        ub.fit(model, x_only, optimizers=[("adam", 1e-2, 1)], progress=False)
    res = ub.fit(model, x_only, u0=U0, optimizers=[("adam", 2e-2, 30)], progress=False)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_learned_initial_conditions_move_toward_the_truth():
    u = _truth().clone()
    u[0] += torch.tensor([0.2, -0.5], dtype=torch.float64)  # a bad first sample
    model = ub.UDE(
        {"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
        params={"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
        fixed=("alpha", "beta", "gamma", "delta"),
    )
    res = ub.fit(
        model,
        ub.Trajectories(TS, u, states=["x", "y"]),
        learn_u0=True,
        optimizers=[("lbfgs", 20)],
        progress=False,
    )
    err_before = (u[0] - torch.tensor(U0, dtype=torch.float64)).abs().max()
    err_after = (res.u0[0] - torch.tensor(U0, dtype=torch.float64)).abs().max()
    # one bad sample among 31: the fitted start is pulled back close to the truth
    assert err_after < 0.1 * err_before


def test_the_same_seed_gives_the_same_loss_history_bit_for_bit():
    data = ub.Trajectories(TS, _truth() * 1.01, states=["x", "y"])
    runs = [
        ub.fit(_small_ude(), data, optimizers=[("adam", 1e-2, 15)], progress=False, seed=3).history
        for _ in range(2)
    ]
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]


def test_resuming_from_a_checkpoint_continues_the_history(tmp_path):
    data = ub.Trajectories(TS, _truth() * 1.01, states=["x", "y"])
    full = ub.fit(
        _small_ude(), data, optimizers=[("adam", 1e-2, 20), ("lbfgs", 5)], progress=False, seed=1
    )
    stop_at = {"n": 0}

    def interrupt(it, loss, model):
        return it >= 12  # stop after 12 iterations, as if interrupted

    ck = tmp_path / "run"
    part = ub.fit(
        _small_ude(),
        data,
        optimizers=[("adam", 1e-2, 20), ("lbfgs", 5)],
        progress=False,
        seed=1,
        checkpoint=str(ck),
        checkpoint_every=4,
        callback=interrupt,
    )
    assert len(part.history) == 12
    assert (ck / "checkpoint.pt").exists()
    resumed = ub.fit(
        _small_ude(),
        data,
        optimizers=[("adam", 1e-2, 20), ("lbfgs", 5)],
        progress=False,
        seed=1,
        checkpoint=str(ck),
        checkpoint_every=4,
    )
    assert len(resumed.history) == 25
    assert [h["iteration"] for h in resumed.history] == list(range(25))
    # the resumed run is the uninterrupted one, loss for loss
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in full.history], rel=1e-12
    )
    assert stop_at["n"] == 0


def test_sigkill_during_checkpointing_leaves_a_loadable_checkpoint(tmp_path):
    ck = tmp_path / "ck.pt"
    script = textwrap.dedent(f"""
        import torch, ude_bridge as ub
        from ude_bridge.train.checkpoint import atomic_save
        atomic_save({{"value": 1}}, {str(ck)!r})
        big = {{"value": 2, "blob": torch.zeros(20_000_000)}}
        print("ready", flush=True)
        while True:
            atomic_save(big, {str(ck)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    import time

    time.sleep(0.8)  # mid-write of the 80 MB blob, most likely
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    obj = torch.load(ck, weights_only=False)
    assert obj["value"] in (1, 2)
    leftovers = [p for p in tmp_path.iterdir() if p.name != "ck.pt"]
    assert all(p.name.endswith(".tmp") for p in leftovers)


def test_a_solver_failure_during_training_is_counted_not_raised():
    data = ub.Trajectories(TS, _truth(), states=["x", "y"])
    model = _param_model(1.0)
    res = ub.fit(
        model, data, optimizers=[("sgd", 50.0, 5)], progress=False, max_steps=200, normalize=False
    )
    # a huge learning rate sends the parameters where the solve blows up
    assert res.failures >= 1
    assert sum(h["failed"] for h in res.history) == res.failures


def test_multiple_shooting_reduces_the_loss_of_a_long_series():
    ts = torch.linspace(0, 10, 51, dtype=torch.float64)
    data = ub.Trajectories(ts, _truth(ts), states=["x", "y"])
    model = _param_model(1.15)
    res = ub.fit(model, data, shooting=4, optimizers=[("adam", 2e-2, 40)], progress=False)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]


def test_validation_loss_is_recorded_and_early_stopping_ends_a_stage():
    ts = torch.linspace(0, 3, 31, dtype=torch.float64)
    u = torch.stack([_truth(ts), _truth(ts, (1.0, 2.0))])
    data = ub.Trajectories(ts, u, states=["x", "y"])
    train, val = data[0:1], data[1:2]
    res = ub.fit(
        _param_model(1.1),
        train,
        validation=val,
        patience=2,
        val_every=1,
        optimizers=[("adam", 1e-1, 200)],
        progress=False,
    )
    vals = [h["val_loss"] for h in res.history if h["val_loss"] is not None]
    assert vals and len(res.history) < 200


def test_fit_result_saves_and_loads(tmp_path):
    data = ub.Trajectories(TS, _truth(), states=["x", "y"])
    res = ub.fit(_small_ude(), data, optimizers=[("adam", 1e-2, 3)], progress=False)
    res.save(tmp_path / "fit.pt")
    back = ub.load(tmp_path / "fit.pt")
    u = torch.rand(4, 2, dtype=torch.float64)
    assert torch.equal(back.model(0.0, u), res.model(0.0, u))
    assert back.history == res.history
    assert torch.allclose(back.predict(TS), res.predict(TS))


def test_fit_result_plot_writes_a_png(tmp_path):
    data = ub.Trajectories(TS, _truth(), states=["x", "y"])
    res = ub.fit(_small_ude(), data, optimizers=[("adam", 1e-2, 2)], progress=False)
    res.plot(tmp_path / "fit.png")
    assert (tmp_path / "fit.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizers": [("adamm", 1e-2, 5)]}, "unknown optimizer 'adamm'.*Did you mean 'adam'"),
        ({"optimizers": []}, "at least one stage"),
        ({"optimizers": [("adam", -1.0, 5)]}, "learning rate must be finite and > 0"),
        ({"sensealg": "adjiont"}, "unknown sensealg 'adjiont'"),
        ({"shooting": 0}, "shooting must be an integer >= 1"),
        ({"rtol": 0.0}, "rtol must be finite and > 0"),
    ],
)
def test_bad_fit_arguments_are_refused_before_any_compute(kwargs, match):
    data = ub.Trajectories(TS, _truth(), states=["x", "y"])
    with pytest.raises(ub.InputError, match=match):
        ub.fit(_small_ude(), data, progress=False, **kwargs)


def test_data_columns_must_be_model_states():
    data = ub.Trajectories(TS, _truth(), states=["x", "z"])
    with pytest.raises(ub.InputError, match="data column 'z' is not a state of the model"):
        ub.fit(_small_ude(), data, progress=False)


def test_the_adjoint_and_backprop_give_the_same_first_step():
    data = ub.Trajectories(TS, _truth() * 1.02, states=["x", "y"])
    a = ub.fit(
        _small_ude(),
        data,
        optimizers=[("sgd", 1e-3, 2)],
        sensealg="adjoint",
        rtol=1e-9,
        atol=1e-9,
        progress=False,
    )
    b = ub.fit(
        _small_ude(),
        data,
        optimizers=[("sgd", 1e-3, 2)],
        sensealg="backprop",
        rtol=1e-9,
        atol=1e-9,
        progress=False,
    )
    assert a.history[1]["loss"] == pytest.approx(b.history[1]["loss"], rel=1e-6)
