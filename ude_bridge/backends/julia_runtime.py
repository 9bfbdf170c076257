"""The Julia runtime: whether Julia can be had, starting it, UDEBridge.jl, PySR, `info`.

The one module that imports juliacall (and pysr, which starts Julia too). Nothing here
starts Julia at import time: juliacall is imported by `udebridge` (and `import_pysr`) on
first use, and everything that only *describes* the runtime (`is_available`,
`unavailable_reason`, `info` without ``start_julia``, the error messages) works without it.
`ude_bridge.backends.julia_backend` (solves) and `ude_bridge.julia` (power users) stand on
this module.

torch and juliacall: importing torch before juliacall can crash the process on some
platforms (pytorch/pytorch#78829, JuliaPy/PythonCall.jl#215). ude_bridge imports torch
itself, so when Julia starts after torch a `JuliaImportOrderWarning` says so *before*
juliacall is imported, with the fix: ``import juliacall`` first in the script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import BackendUnavailableError

__all__ = [
    "INSTALL_HINT",
    "JuliaImportOrderWarning",
    "format_info",
    "import_pysr",
    "info",
    "is_available",
    "julia_source_path",
    "pysr_available",
    "require_julia",
    "require_pysr",
    "udebridge",
    "unavailable_reason",
]

#: How to get the Julia backend: one sentence, used by every message.
INSTALL_HINT = (
    'Install it with: pip install "ude-bridge[julia]" (on first use juliapkg then installs '
    "Julia 1.10 and the Julia packages ude_bridge needs: OrdinaryDiffEq, SciMLSensitivity, "
    "Zygote, Enzyme), or set PYTHON_JULIAPKG_EXE to the path of an existing julia "
    "executable to use that one."
)

_ORDER_URL = "https://github.com/pytorch/pytorch/issues/78829"


class JuliaImportOrderWarning(UserWarning):
    """Julia is starting in a process that imported torch first (a known crash risk)."""


def _find_spec(name: str) -> Any:
    """`importlib.util.find_spec` that never imports the package itself."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _missing_packages() -> list[str]:
    return [name for name in ("juliacall", "juliapkg") if _find_spec(name) is None]


def is_available() -> bool:
    """Whether juliacall and juliapkg are installed (Julia itself is fetched on first use)."""
    return not _missing_packages()


def unavailable_reason() -> str:
    """What is missing for the Julia backend and how to get it ('' when nothing is)."""
    missing = _missing_packages()
    if not missing:
        return ""
    what = " and ".join(missing)
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"backend 'julia' needs the Python packages juliacall and juliapkg; {what} {verb} "
        f"not installed. {INSTALL_HINT}"
    )


def require_julia(where: str) -> None:
    """Raise `BackendUnavailableError` (``"<where>: ... How to install."``) unless available."""
    reason = unavailable_reason()
    if reason:
        raise BackendUnavailableError(f"{where}: {reason}")


# --------------------------------------------------------------------------- starting Julia

_STATE: dict[str, Any] = {"module": None, "models": {}}


def _env_defaults() -> None:
    # Julia's GC uses signals; with several Julia threads they must be handled (PythonCall
    # FAQ). Threads "auto" lets EnsembleThreads use the cores. Only set when unset.
    os.environ.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
    os.environ.setdefault("PYTHON_JULIACALL_THREADS", "auto")


def _warn_import_order() -> None:
    if "torch" in sys.modules and "juliacall" not in sys.modules:
        warnings.warn(
            "Julia is starting after torch was imported. On some platforms (notably macOS) "
            "this order crashes the process with a segfault or heap corruption "
            f"({_ORDER_URL}). If it does, import juliacall before torch and ude_bridge: put "
            "`import juliacall` as the first import of your script.",
            JuliaImportOrderWarning,
            stacklevel=4,
        )


def _start_julia(where: str) -> Any:
    """Import juliacall (starting Julia), with the env defaults and the torch-order check."""
    if "juliacall" in sys.modules:
        return sys.modules["juliacall"]
    require_julia(where)
    _env_defaults()
    _warn_import_order()
    with warnings.catch_warnings():
        # juliacall warns about torch itself; ours (above) already said it, with the fix.
        warnings.filterwarnings("ignore", message=r".*torch.*loaded before", category=UserWarning)
        try:
            import juliacall  # noqa: PLC0415 - the one lazy import of juliacall
        except Exception as exc:  # juliapkg failing to fetch Julia, Julia failing to start
            raise BackendUnavailableError(
                f"{where}: juliacall is installed but Julia could not be started ({exc}). "
                f"{INSTALL_HINT}"
            ) from exc
    return juliacall


def julia_source_path() -> Path:
    """Where ``UDEBridge.jl`` is: shipped inside the package, else the repository's julia/.

    Looked up as ``ude_bridge/_julia/UDEBridge.jl`` (the copy a wheel ships; not
    ``ude_bridge/julia/``, which would sit beside the module ``ude_bridge/julia.py``), then
    ``ude_bridge/julia/UDEBridge.jl``, then ``<repository>/julia/UDEBridge.jl`` (a source
    checkout or an editable install).

    Raises:
        BackendUnavailableError: the file is in none of these places (a broken install).
    """
    package = Path(__file__).resolve().parent.parent
    candidates = (
        package / "_julia" / "UDEBridge.jl",
        package / "julia" / "UDEBridge.jl",
        package.parent / "julia" / "UDEBridge.jl",
    )
    for path in candidates:
        if path.is_file():
            return path
    raise BackendUnavailableError(
        "julia backend: UDEBridge.jl must ship with ude_bridge; it is in none of "
        f"{', '.join(str(c) for c in candidates)}. Reinstall ude_bridge."
    )


def udebridge(where: str = "julia backend") -> Any:
    """The ``UDEBridge`` Julia module, loading Julia and the module on first use."""
    if _STATE["module"] is None:
        jc = _start_julia(where)
        path = julia_source_path()
        try:
            jc.Main.include(str(path))
            _STATE["module"] = jc.Main.UDEBridge
        except Exception as exc:
            raise BackendUnavailableError(
                f"{where}: Julia started but {path.name} could not be loaded ({exc}). The "
                'Julia packages may be missing: reinstall them with python -c "import '
                'juliapkg; juliapkg.resolve(force=True)", or ' + INSTALL_HINT
            ) from exc
    return _STATE["module"]


# --------------------------------------------------------------------------- PySR


def pysr_available() -> bool:
    """Whether PySR (and so Julia through juliacall) is installed."""
    return is_available() and _find_spec("pysr") is not None


def require_pysr(where: str) -> None:
    """Raise `BackendUnavailableError` unless PySR can be used."""
    missing = [n for n in ("pysr", "juliacall", "juliapkg") if _find_spec(n) is None]
    if missing:
        raise BackendUnavailableError(
            f"{where}: symbolic regression with method='pysr' needs the Python packages pysr, "
            f"juliacall and juliapkg; {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. {INSTALL_HINT}"
        )


def import_pysr(where: str) -> Any:
    """Import and return the ``pysr`` module, with the same Julia start-up handling."""
    require_pysr(where)
    if "pysr" in sys.modules:
        return sys.modules["pysr"]
    _env_defaults()
    _warn_import_order()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch.*loaded before", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"juliacall module already imported")
        try:
            import pysr  # noqa: PLC0415
        except Exception as exc:
            raise BackendUnavailableError(
                f"{where}: pysr is installed but could not start Julia ({exc}). {INSTALL_HINT}"
            ) from exc
    return pysr


# --------------------------------------------------------------------------- info


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _juliapkg_state() -> dict[str, Any]:
    """What juliapkg recorded at its last resolve (no Julia started)."""
    if _find_spec("juliapkg") is None:
        return {}
    try:
        from juliapkg.state import STATE  # noqa: PLC0415 - pure Python, starts nothing
    except Exception:
        return {}
    out: dict[str, Any] = {"project": STATE.get("project")}
    meta_file = STATE.get("meta")
    if meta_file and os.path.isfile(meta_file):
        try:
            with open(meta_file) as fp:
                meta = json.load(fp)
            out["executable"] = meta.get("executable")
            out["version"] = meta.get("version")
        except (OSError, ValueError):
            pass
    manifest = Path(str(out["project"] or "")) / "Manifest.toml"
    if manifest.is_file():
        try:
            import tomllib  # noqa: PLC0415
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # noqa: PLC0415
        try:
            deps = tomllib.loads(manifest.read_text()).get("deps", {})
            wanted = json.loads((Path(__file__).parent.parent / "juliapkg.json").read_text())
            out["packages"] = {
                name: entries[0].get("version", "stdlib")
                for name, entries in deps.items()
                if name in wanted.get("packages", {}) and entries
            }
        except (OSError, ValueError):
            pass
    return out


def info(start_julia: bool = False) -> dict[str, Any]:
    """What ``ude-bridge info`` reports; starts Julia only when ``start_julia`` is True.

    Returns:
        A dict with ``torch`` (version, threads, cuda, devices), ``scipy``, ``pysindy``,
        ``juliacall``, ``juliapkg``, ``pysr``, ``diffeqpy`` (installed versions or None),
        ``julia`` (``available``, ``reason``, ``executable`` and ``version`` as juliapkg
        last resolved them or as found on PATH / ``PYTHON_JULIAPKG_EXE``, ``project``,
        ``packages``: resolved versions from the project's Manifest.toml, and with
        ``start_julia``: ``running`` versions reported by Julia itself, or ``error``).
    """
    cuda = torch.cuda.is_available()
    out: dict[str, Any] = {
        "torch": {
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": cuda,
            "cuda_version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else [],
        },
    }
    for name in ("scipy", "pysindy", "juliacall", "juliapkg", "pysr", "diffeqpy"):
        out[name] = _version(name)
    julia: dict[str, Any] = {"available": is_available(), "reason": unavailable_reason()}
    julia.update(_juliapkg_state())
    override = os.environ.get("PYTHON_JULIAPKG_EXE")
    if override:
        julia["executable"] = override
        julia["executable_from"] = "PYTHON_JULIAPKG_EXE"
    elif julia.get("executable"):
        julia["executable_from"] = "juliapkg"
    elif shutil.which("julia"):
        julia["executable"] = shutil.which("julia")
        julia["executable_from"] = "PATH"
    else:
        julia["executable"] = None
    if start_julia:
        try:
            versions = udebridge("ude-bridge info --julia").versions()
            julia["running"] = {str(k): str(v) for k, v in versions.items()}
        except Exception as exc:
            julia["error"] = str(exc)
    out["julia"] = julia
    return out


def format_info(data: dict[str, Any]) -> str:
    """`info`'s dict as the lines ``ude-bridge info`` prints."""
    t = data["torch"]
    devices = ", ".join(t["devices"]) or "none"
    lines = [
        f"torch      {t['version']} ({t['threads']} threads; CUDA "
        f"{'yes, ' + str(t['cuda_version']) + ': ' + devices if t['cuda'] else 'no'})",
    ]
    for name in ("scipy", "pysindy", "juliacall", "juliapkg", "pysr", "diffeqpy"):
        lines.append(f"{name:<10} {data[name] or 'not installed'}")
    j = data["julia"]
    exe = j.get("executable")
    where = f" (from {j['executable_from']})" if exe else ""
    found = exe or "none found (juliapkg installs Julia 1.10 on first use)"
    lines.append(f"julia      {found}{where}")
    if j.get("version"):
        lines.append(f"  version  {j['version']}")
    if j.get("project"):
        lines.append(f"  project  {j['project']}")
    for pkg, ver in sorted((j.get("packages") or {}).items()):
        lines.append(f"  {pkg:<22} {ver}")
    for key, ver in sorted((j.get("running") or {}).items()):
        lines.append(f"  running {key:<14} {ver}")
    if j.get("error"):
        lines.append(f"  error: {j['error']}")
    if not j["available"]:
        lines.append(f"  {j['reason']}")
    return "\n".join(lines)
