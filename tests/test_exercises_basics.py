"""The self-checks of chapters 00-01 accept right answers and reject wrong ones, with a hint."""

import pytest

from helpers.data import make_regression_data
from helpers.exercises import (
    check,
    check_average_pooling_mse,
    check_best_constant,
    check_cup_takeover,
    check_desk_winner,
    check_row_sum,
)


def test_check_prints_praise_or_hint(capsys):
    assert check(True, "hint") is True
    assert check(False, "look again") is False
    out = capsys.readouterr().out
    assert "Correct" in out and "look again" in out


def test_unanswered_is_not_correct(capsys):
    assert check_row_sum(None) is False
    assert "Replace None" in capsys.readouterr().out


def test_desk_checks():
    # reading with saliency 2.5: book scores 3, cup 2.5 -> book; at 3.5 the cup
    assert check_desk_winner("read a book", 2.5, "book")
    assert not check_desk_winner("read a book", 2.5, "red coffee cup")
    assert check_desk_winner("read a book", 3.5, "red coffee cup")
    assert not check_desk_winner("read a book", 2.5, "lamp")
    assert check_cup_takeover(3.0) and not check_cup_takeover(2.0)
    assert check_row_sum(1) and not check_row_sum(0.5)


def test_chapter_01_checks():
    d = make_regression_data(noise=0.0, seed=0)
    mean = sum(d.y_train.tolist()) / 50
    mse = sum((t - mean) ** 2 for t in d.y_truth.tolist()) / 50
    assert check_average_pooling_mse(mse, d)
    assert not check_average_pooling_mse(mse * 1.1, d)
    assert check_best_constant(mean, d)
    assert not check_best_constant(mean + 0.1, d)


def test_hints_never_print_the_answer(capsys):
    d = make_regression_data(seed=0)
    check_best_constant(0.0, d)
    out = capsys.readouterr().out
    assert f"{d.y_train.mean().item():.2f}" not in out
    with pytest.raises(ValueError):
        check_desk_winner("sleep", 1.0, "book")
