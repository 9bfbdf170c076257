"""The ``ude-bridge`` command line: model files, run folders, reports and the demo.

Modules: `main` (argparse subcommands and error handling), `config` (TOML model files),
`runs` (run folders), `pipeline` (fit / discover / forecast steps in a run folder),
`report` (plots, ``report.md`` and a self-contained ``report.html``), `demo` (built-in
systems). Nothing here is imported by ``import ude_bridge``.
"""

from .main import main as main

__all__ = ["main"]
