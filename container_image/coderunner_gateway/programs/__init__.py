"""Programs the gateway runs elsewhere, kept as files so that ruff lints the Python ones:

* ``kernel_launch.py``: starts every kernel (kernels.py, as ``python -c``);
* ``kernel_init.py``, ``kernel_init_after.py``: run once in every new kernel (kernels.py);
* ``script_bootstrap.py``: starts every python script (scripts.py), after ``script_waiter.py``
  in an interpreter started ahead;
* ``*.js``: evaluated in a page to read it (browser.py).

None of them is imported: each is read (once) and sent as text.
"""

from __future__ import annotations

import functools
from importlib.resources import files


@functools.cache
def load(name: str) -> str:
    """The text of the program ``name`` (a file of this package)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")
