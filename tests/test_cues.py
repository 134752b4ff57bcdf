"""The desk scene of chapter 00, against scores and softmaxes worked out by hand."""

import math

import pytest
import torch

from helpers.cues import DESK_INTENTIONS, DESK_OBJECTS, desk_scene_scores, desk_scene_weights

CUP = DESK_OBJECTS.index("red coffee cup")
BOOK = DESK_OBJECTS.index("book")


def softmax_by_hand(scores):
    e = [math.exp(s) for s in scores]
    return [v / sum(e) for v in e]


def test_scores_by_hand():
    # read a book = (1, 2, 0, 0): newspaper 1, paper 1 + 0.5*2 = 2, notebook 0, book 1 + 2 = 3,
    # cup 0 + saliency.
    assert desk_scene_scores("read a book", 1.5).tolist() == [1.0, 2.0, 0.0, 3.0, 1.5]
    assert desk_scene_scores("take notes", 0.0).tolist() == [0.0, 0.0, 3.0, 0.0, 0.0]


def test_weights_by_hand():
    got = desk_scene_weights("read a book", 1.0).tolist()
    assert got == pytest.approx(softmax_by_hand([1, 2, 0, 3, 1]), abs=1e-6)


@pytest.mark.parametrize("intention", list(DESK_INTENTIONS))
@pytest.mark.parametrize("saliency", [0.0, 0.3, 2.0, 5.0])
def test_weights_are_a_distribution(intention, saliency):
    w = desk_scene_weights(intention, saliency)
    assert w.shape == (len(DESK_OBJECTS),)
    assert torch.all(w >= 0)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_no_cue_is_average_pooling():
    assert desk_scene_weights("nothing in particular", 0.0).tolist() == pytest.approx([0.2] * 5)


@pytest.mark.parametrize("intention", list(DESK_INTENTIONS))
def test_stronger_saliency_moves_weight_to_the_salient_object(intention):
    cup = [desk_scene_weights(intention, s)[CUP].item() for s in [0.0, 0.5, 1.0, 2.0, 4.0]]
    assert all(b > a for a, b in zip(cup, cup[1:]))


def test_the_cup_overtakes_the_book_where_the_scores_tie():
    # Book score is 3; the cup's is the saliency: below 3 the book wins, above 3 the cup.
    assert desk_scene_weights("read a book", 2.9).argmax().item() == BOOK
    assert desk_scene_weights("read a book", 3.1).argmax().item() == CUP
    w = desk_scene_weights("read a book", 3.0)
    assert w[CUP].item() == pytest.approx(w[BOOK].item())


def test_intention_wins_without_saliency():
    winners = {i: DESK_OBJECTS[desk_scene_weights(i, 0.0).argmax()] for i in DESK_INTENTIONS}
    assert winners["read a book"] == "book"
    assert winners["take notes"] == "notebook"
    assert winners["drink coffee"] == "red coffee cup"


@pytest.mark.parametrize(
    ("intention", "saliency", "error", "name"),
    [
        ("sleep", 1.0, ValueError, "intention"),
        (3, 1.0, TypeError, "intention"),
        ("read a book", -1.0, ValueError, "saliency"),
        ("read a book", float("inf"), ValueError, "saliency"),
        ("read a book", "high", TypeError, "saliency"),
    ],
)
def test_bad_arguments(intention, saliency, error, name):
    with pytest.raises(error, match=name):
        desk_scene_weights(intention, saliency)


def test_saliency_is_a_key_feature_and_its_strength_sits_in_the_query():
    from helpers.cues import DESK_FEATURES, DESK_KEYS, DESK_SALIENCY, desk_query

    assert DESK_FEATURES[-1] == "stands out"
    assert DESK_KEYS[:, -1].tolist() == [0, 0, 0, 0, 1] == DESK_SALIENCY.tolist()
    assert desk_query("read a book", 2.5).tolist() == [1.0, 2.0, 0.0, 0.0, 2.5]
    # one dot product per object, written out by hand for the cup: 0*0 + ... + 3*1 + 1.5*1
    assert desk_scene_scores("drink coffee", 1.5)[CUP].item() == 4.5
    # the saliency strength changes only the salient object's score
    diff = desk_scene_scores("take notes", 2.0) - desk_scene_scores("take notes", 0.0)
    assert diff.tolist() == [0.0, 0.0, 0.0, 0.0, 2.0]
