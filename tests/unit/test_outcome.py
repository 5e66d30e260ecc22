"""Outcome: how an execution ended, mapped to the exit codes of the README's table."""

from __future__ import annotations

import signal

import pytest
from coderunner_gateway.outcome import (
    EXIT_DIED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    Outcome,
    system_exit_code,
    system_exit_prints,
)


def test_the_exit_codes_are_the_documented_ones():
    assert (EXIT_TIMEOUT, EXIT_INTERRUPTED, EXIT_DIED) == (124, 130, 137)


@pytest.mark.parametrize("rc, status", [(0, "ok"), (1, "error"), (3, "error"), (255, "error")])
def test_a_normal_exit_keeps_its_code(rc, status):
    o = Outcome.from_returncode(rc)
    assert (o.status, o.exit_code, o.signal, o.message) == (status, rc, None, None)


def test_sigint_is_interrupted_130():
    o = Outcome.from_returncode(-signal.SIGINT)
    assert (o.status, o.exit_code, o.signal) == ("interrupted", 130, "SIGINT")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM])
def test_any_other_signal_is_died_137_naming_it(sig):
    o = Outcome.from_returncode(-sig)
    assert (o.status, o.exit_code, o.signal) == ("died", 137, sig.name)
    assert sig.name in o.message


def test_an_unknown_signal_number_is_still_died():
    o = Outcome.from_returncode(-63)
    assert o.status == "died" and o.exit_code == 137
    assert "63" in o.message


def test_timeout_says_how_long_and_what_happened():
    o = Outcome.timeout(2.5, "the process was killed")
    assert (o.status, o.exit_code) == ("timeout", 124)
    assert o.message == "timed out after 2.5s; the process was killed"


@pytest.mark.parametrize(
    "evalue, code, prints",
    [
        ("", 0, False),
        ("None", 0, False),
        ("0", 0, False),
        ("3", 3, False),
        (" 42 ", 42, False),
        ("1", 1, False),
        ("bye", 1, True),
        ("3.5", 1, True),
    ],
)
def test_system_exit_is_read_as_python_does(evalue, code, prints):
    assert system_exit_code(evalue) == code
    assert system_exit_prints(evalue) is prints
