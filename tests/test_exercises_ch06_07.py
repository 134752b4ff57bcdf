"""Self-checks of chapters 6-7: right answers pass, wrong ones get a hint without the answer."""

import pytest

from helpers import exercises as ex

CASES = [
    (ex.check_head_width, 20, [None, 4, 100, 20.5, True]),
    (ex.check_transpose_qkv_shape, (6, 7, 4), [None, (2, 7, 12), (2, 3, 7, 4), (6, 4, 7)]),
    (ex.check_cost_crossover, 512, [None, 64, 262144]),
    (ex.check_mirror_position, lambda t, n: n - 1 - t, [lambda t, n: n - t, lambda t, n: t]),
    (ex.check_attention_parameters, 2 * 64 * 64 + 64, [None, 2 * 64 * 64, 3 * 64 * 64]),
]


@pytest.mark.parametrize(("check", "right", "wrongs"), CASES)
def test_checks_accept_the_answer_and_reject_others(check, right, wrongs, capsys):
    assert check(right) is True
    assert capsys.readouterr().out.startswith("Correct")
    for wrong in wrongs:
        assert check(wrong) is False
        out = capsys.readouterr().out
        assert out.startswith("Not yet. Hint:") or "raised" in out


def test_hints_do_not_give_the_answer(capsys):
    ex.check_head_width(None)
    ex.check_cost_crossover(None)
    ex.check_attention_parameters(None)
    out = capsys.readouterr().out
    assert "20" not in out and "512" not in out and "8256" not in out


def test_mirror_check_survives_a_failing_function(capsys):
    assert ex.check_mirror_position(lambda t, n: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out
