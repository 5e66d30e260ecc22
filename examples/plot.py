"""A figure from a session: `coderunner session new demo && coderunner exec -s demo examples/plot.py`."""

import matplotlib.pyplot as plt

xs = range(20)
plt.plot(xs, [x * x for x in xs])
plt.title("squares")
plt.show()
