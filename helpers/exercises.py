"""Self-checks for the exercises: they say whether an answer is right and hint, never answer."""

from __future__ import annotations

__all__ = ["check"]


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


# ---------------------------------------------------------------------------------------------
# Chapters 00-01
# ---------------------------------------------------------------------------------------------


def _unanswered(answer) -> bool:
    if answer is None:
        print("Replace None with your answer, then run the cell again.")
        return True
    return False


def check_desk_winner(intention: str, saliency: float, answer: str) -> bool:
    """Chapter 00: which object of the desk scene gets the most weight for this cue setting?"""
    from helpers.cues import DESK_OBJECTS, desk_scene_weights

    if _unanswered(answer):
        return False
    if answer not in DESK_OBJECTS:
        print(f"Not yet. Hint: answer with one of {list(DESK_OBJECTS)}.")
        return False
    winner = DESK_OBJECTS[int(desk_scene_weights(intention, saliency).argmax())]
    return check(
        answer == winner,
        "the winner has the largest score query·key + saliency; set the explorer to this "
        "intention and saliency and look at the bars.",
    )


def check_cup_takeover(answer: float) -> bool:
    """Chapter 00: the saliency at which the red cup's weight equals the book's when reading."""
    from helpers.cues import DESK_OBJECTS, desk_scene_scores

    if _unanswered(answer):
        return False
    scores = desk_scene_scores("read a book", 0.0)
    # The cup's score grows by exactly `saliency`; the weights tie where the scores tie.
    tie = float(scores[DESK_OBJECTS.index("book")] - scores[DESK_OBJECTS.index("red coffee cup")])
    return check(
        abs(float(answer) - tie) < 0.05,
        "two objects get equal weight exactly when their scores are equal; write both scores "
        "as functions of the saliency.",
    )


def check_row_sum(answer: float) -> bool:
    """Chapter 00: what does every row of an attention-weight heatmap add up to?"""
    if _unanswered(answer):
        return False
    return check(
        abs(float(answer) - 1.0) < 1e-9,
        "each row holds the weights one query gives to all keys; what does a softmax sum to?",
    )


def check_average_pooling_mse(answer: float, data) -> bool:
    """Chapter 01: test MSE of average pooling against the truth for the given data."""
    if _unanswered(answer):
        return False
    y_hat = data.y_train.double().mean()
    mse = float(((data.y_truth.double() - y_hat) ** 2).mean())
    return check(
        abs(float(answer) - mse) <= 1e-3 * max(1.0, abs(mse)),
        "the prediction is the same number for every test point; average the squared "
        "differences to y_truth over the test grid.",
    )


def check_best_constant(answer: float, data) -> bool:
    """Chapter 01: the constant c that minimises the training squared error sum (y_i - c)^2."""
    if _unanswered(answer):
        return False
    best = float(data.y_train.double().mean())
    return check(
        abs(float(answer) - best) <= 1e-3,
        "set the derivative of sum_i (y_i - c)^2 with respect to c to zero.",
    )


# ---------------------------------------------------------------------------------------------
# Chapters 02-03
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 06-07
# ---------------------------------------------------------------------------------------------
