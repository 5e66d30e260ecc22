import sys as _sys

for _s in (_sys.stdout, _sys.stderr):
    _s.__dict__.pop("write", None)
del _sys, _s
