"""Small functions shared by several test files."""

from __future__ import annotations


def run_check(check, answer, capsys):
    """Call a self-check with an answer: (what it returns, what it printed)."""
    result = check(answer)
    return result, capsys.readouterr().out
