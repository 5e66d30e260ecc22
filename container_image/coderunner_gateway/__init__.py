"""coderunner-gateway: the HTTP gateway that runs inside the sandbox.

It runs code two ways (see the README): a fresh ``python``/``bash``
process per request, or a persistent session backed by a Jupyter kernel
(or a bash process), and reports both through one event stream.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
