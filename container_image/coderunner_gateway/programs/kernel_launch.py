# Starts a session's kernel (kernels.py runs it with `python -c`), as ipykernel_launcher does,
# without ipykernel's debugger: the gateway never speaks Jupyter's debug protocol, and
# debugpy's pydevd is ~8 MiB of every kernel and ~100 modules of its start. debugpy itself
# stays importable by the user's code: it is hidden only while ipykernel looks for it.
import importlib.util
import sys
from pathlib import Path

if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():
    del sys.path[0]  # ipykernel puts the cwd back once it is loaded (InteractiveShellApp.init_path)
# argv[0] as under `python -m ipykernel_launcher` (some libraries look there for Jupyter)
launcher = importlib.util.find_spec("ipykernel_launcher")
sys.argv[0] = launcher.origin if launcher is not None and launcher.origin else sys.argv[0]
del launcher
sys.modules["debugpy"] = None  # type: ignore[assignment]
import ipykernel.debugger  # noqa: E402,F401  (finds no debugpy: the debugger is off)

del sys.modules["debugpy"]
from ipykernel import kernelapp  # noqa: E402

kernelapp.launch_new_instance()
