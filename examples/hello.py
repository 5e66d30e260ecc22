"""The quickstart example: run it with `coderunner exec examples/hello.py [ARGS...]`."""

import os
import platform
import sys

print(f"Hello from the coderunner sandbox: Python {platform.python_version()} on {platform.system()}")
print(f"cwd={os.getcwd()} uid={os.getuid()} args={sys.argv[1:]}")
squares = [n * n for n in range(10)]
print("sum of the first ten squares:", sum(squares))
