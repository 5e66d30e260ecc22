"""The one argv builder the runtimes use (python-on-whales' ``Command`` is the model).

An option whose value is ``None`` is left out and a flag that is off is not
added, so a command line reads as its options instead of as ``if`` blocks.
"""

from __future__ import annotations

from collections.abc import Iterable


class Command(list[str]):
    def add_simple_arg(self, name: str, value: object) -> None:
        """``name value``, unless value is None."""
        if value is not None:
            self += [name, str(value)]

    def add_flag(self, name: str, on: bool) -> None:
        """``name`` alone, when on."""
        if on:
            self.append(name)

    def add_args_iterable(self, name: str, values: Iterable[object]) -> None:
        """``name value`` for each value."""
        for value in values:
            self += [name, str(value)]
