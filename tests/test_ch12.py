"""Chapter 12: the shipped checkpoints (load into the classes as built, small, reproducible from
the training script's first steps), the evaluations against direct loops, the attention counts
of the real-depth architectures, head scores, the explorer and the self-checks."""

from __future__ import annotations

import math
from collections import Counter
from importlib import resources

import pytest
import torch

from helpers import text, textmodels, training
from helpers.bert import CharBERT, mask_tokens
from helpers.transformer import TinyGPT
from helpers.ui import ch12
from helpers.ui.checks import REPLACE_NONE


@pytest.fixture(scope="module")
def corpus():
    return text.load_corpus()


@pytest.fixture
def tiny_gpt():
    torch.manual_seed(0)
    return TinyGPT(20, num_hiddens=16, num_heads=2, num_layers=2, max_len=8).eval()


@pytest.mark.parametrize("name", [textmodels.GPT_ASSET, textmodels.BERT_ASSET])
def test_checkpoints_ship_small_with_their_config_and_vocab(name, corpus):
    path = resources.files("helpers") / "assets" / name
    assert path.is_file()
    assert path.stat().st_size <= 2_000_000
    ckpt = textmodels.load_checkpoint(name)
    assert ckpt["vocab"] == "".join(corpus.vocab.itos[3:])
    assert ckpt["steps"] == len(ckpt["losses"]) == textmodels.TRAIN["steps"]
    want = textmodels.GPT_CONFIG if ckpt["kind"] == "gpt" else textmodels.BERT_CONFIG
    assert ckpt["config"] == want


def test_loaders_build_the_classes_and_load_strictly(corpus):
    gpt, vocab = textmodels.load_text_gpt()
    assert isinstance(gpt, TinyGPT) and not gpt.training
    assert gpt.max_len == textmodels.GPT_CONFIG["max_len"] and vocab.itos == corpus.vocab.itos
    fresh = textmodels.build_gpt(len(vocab))
    fresh.load_state_dict(gpt.state_dict())  # strict: the class as built takes every tensor
    bert, vocab_b = textmodels.load_text_bert()
    assert isinstance(bert, CharBERT) and vocab_b.itos == vocab.itos
    textmodels.build_bert(len(vocab)).load_state_dict(bert.state_dict())
    x = vocab.encode("The value of x.")[None]
    assert gpt(x).shape == (1, 15, len(vocab))


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_the_scripts_first_steps_reproduce_the_stored_loss_curve(kind, corpus):
    torch.set_num_threads(1)
    t = textmodels.TRAIN
    vocab = corpus.vocab
    ids = vocab.encode(corpus.stream("train"))
    n = 3
    if kind == "gpt":
        stored = textmodels.load_checkpoint(textmodels.GPT_ASSET)["losses"]
        model = textmodels.build_gpt(len(vocab), seed=t["seed"])
        losses = textmodels.train_gpt(model, ids, n, t["batch_size"], t["gpt_lr"], t["warmup"],
                                t["seed"], total_steps=t["steps"])
    else:
        stored = textmodels.load_checkpoint(textmodels.BERT_ASSET)["losses"]
        model = textmodels.build_bert(len(vocab), seed=t["seed"])
        losses = textmodels.train_bert(model, ids, vocab, n, t["batch_size"], t["bert_lr"],
                                 t["warmup"], t["seed"], total_steps=t["steps"])
    assert losses == pytest.approx(stored[:n], rel=2e-3)
    assert stored[-1] < stored[0] - 1.0  # and the stored curve fell


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    assert training.lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert training.lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert training.lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert training.lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)


def _direct_bits(model, ids, window):
    """Each target t (1..n) predicted from ids[start..t-1], start = the window's first id."""
    nll, hits = 0.0, 0
    for t in range(1, ids.numel()):
        start = ((t - 1) // window) * window
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[start:t][None])[0, -1].double(), -1)
        nll -= logp[ids[t]].item()
        hits += int(logp.argmax() == ids[t])
    n = ids.numel() - 1
    return nll / n / math.log(2), hits / n


def test_causal_eval_matches_a_direct_loop(tiny_gpt):
    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(0, 20, (n,), generator=g) for n in (20, 9, 2)]
    got = textmodels.causal_eval(tiny_gpt, docs, window=8)
    bits = [_direct_bits(tiny_gpt, d, 8) for d in docs]
    n = [d.numel() - 1 for d in docs]
    assert got["chars"] == sum(n)
    assert got["bits"] == pytest.approx(sum(b * k for (b, _), k in zip(bits, n)) / sum(n),
                                        rel=1e-5)
    assert got["accuracy"] == pytest.approx(sum(a * k for (_, a), k in zip(bits, n)) / sum(n))
    # a sliding window scores every target once, each with at least window - stride of context
    slide = textmodels.causal_eval(tiny_gpt, docs, window=8, stride=2)
    assert slide["chars"] == sum(n)
    nll = 0.0
    for d in docs:
        for t in range(1, d.numel()):
            lo = 0 if t <= 8 else ((t - 8 - 1) // 2 + 1) * 2  # the window that scores t
            with torch.no_grad():
                logp = torch.log_softmax(tiny_gpt(d[lo:t][None])[0, -1].double(), -1)
            nll -= logp[d[t]].item()
    assert slide["bits"] == pytest.approx(nll / sum(n) / math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="stride"):
        textmodels.causal_eval(tiny_gpt, docs, window=8, stride=9)


def test_count_attention_in_the_real_depth_architectures():
    architectures = textmodels.real_depth_architectures()
    counts = {k: textmodels.count_attention(m) for k, m in architectures.items()}
    assert counts == {
        "Transformer base (2017)": {"self": 6, "masked self": 6, "cross": 6},
        "BERT-base": {"self": 12, "masked self": 0, "cross": 0},
        "GPT-2 small": {"self": 0, "masked self": 12, "cross": 0},
    }
    from helpers.attention import MultiHeadAttention

    with pytest.raises(ValueError, match="does not know"):
        textmodels.count_attention(torch.nn.Sequential(MultiHeadAttention(4, 2, 0.0)))


def test_count_attention_kinds_match_what_each_module_can_see():
    """Behaviour, not the table: change a later input and see whether an earlier query's output
    moves. Bidirectional self-attention: it does; masked self-attention: it does not;
    cross-attention: a change in the encoder's later positions reaches every decoder query."""
    from helpers.transformer import TinyGPTBlock, TransformerDecoderBlock, TransformerEncoderBlock

    torch.manual_seed(0)
    d, T = 8, 5
    X = torch.randn(1, T, d)
    later = X.clone()
    later[0, -1] += 1.0  # only the last position changes

    def earlier_moves(f, a, b):
        with torch.no_grad():
            return not torch.allclose(f(a)[0, 0], f(b)[0, 0], atol=1e-6)

    enc = TransformerEncoderBlock(d, 16, 2, 0.0).eval()
    gpt_block = TinyGPTBlock(d, 2, 0.0).eval()
    dec = TransformerDecoderBlock(d, 16, 2, 0.0, 0).eval()
    memory = torch.randn(1, 6, d)
    memory_later = memory.clone()
    memory_later[0, -1] += 1.0
    assert textmodels.count_attention(enc) == {"self": 1, "masked self": 0, "cross": 0}
    assert earlier_moves(lambda x: enc(x, None), X, later)  # "self": sees later positions
    assert textmodels.count_attention(gpt_block) == {"self": 0, "masked self": 1, "cross": 0}
    assert not earlier_moves(gpt_block, X, later)  # "masked self": does not
    assert textmodels.count_attention(dec) == {"self": 0, "masked self": 1, "cross": 1}
    assert not earlier_moves(lambda x: dec(x, [memory, None, [None]])[0], X, later)
    assert earlier_moves(lambda m: dec(X, [m, None, [None]])[0], memory, memory_later)


def test_attention_masks():
    m = textmodels.attention_masks(4, 3, src_valid=3)
    assert m["bidirectional self"].tolist() == [[1, 1, 1, 0]] * 4
    assert m["causal self"].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert m["encoder-to-decoder"].tolist() == [[1, 1, 1, 0]] * 3
    full = textmodels.attention_masks(2, 3)
    assert full["encoder-to-decoder"].tolist() == [[1, 1]] * 3
    with pytest.raises(ValueError, match="src_valid"):
        textmodels.attention_masks(4, 3, src_valid=5)


def test_patterns():
    assert textmodels.previous_char_pairs("abc") == [(1, 0), (2, 1)]
    assert textmodels.next_char_pairs("abc") == [(0, 1), (1, 2)]
    # "ab cdef g_hij": cdef starts at 3, g_hij at 8; a cut-off word at the left edge is skipped
    pairs = textmodels.word_start_pairs("ab cdef g_hij")
    assert pairs == [(5, 3), (6, 3), (10, 8), (11, 8), (12, 8)]
    assert textmodels.word_start_pairs("xyz ab") == [(2, 0)]


def test_head_scores_match_a_loop(tiny_gpt):
    vocab = text.CharVocab("abcdefgh ")
    texts = ["ab cdef ", "gh abcd "]
    tiny_gpt_v = TinyGPT(len(vocab), 16, 2, 2, max_len=8).eval()
    got = textmodels.head_scores(tiny_gpt_v, texts, vocab)
    for name, fn in textmodels.PATTERNS.items():
        want = torch.zeros(2, 2, dtype=torch.float64)
        pairs = 0
        for t in texts:
            with torch.no_grad():
                tiny_gpt_v(vocab.encode(t)[None])
            w = tiny_gpt_v.attention_weights
            for q, k in fn(t):
                pairs += 1
                for layer in range(2):
                    want[layer] += w[layer][0, :, q, k].double()
        torch.testing.assert_close(got[name].double(), (want / pairs), atol=1e-6, rtol=1e-5)
    assert float(got["next char"].abs().max()) < 1e-6  # causal: the future is never weighed
    with pytest.raises(ValueError, match="one length"):
        textmodels.head_scores(tiny_gpt_v, ["ab", "abc"], vocab)


def test_fill_in_and_last_position_evals_agree_with_direct_predictions(corpus):
    torch.manual_seed(0)
    vocab = corpus.vocab
    gpt = TinyGPT(len(vocab), 16, 2, 1, max_len=16).eval()
    bert = CharBERT(len(vocab), 16, 32, 2, 1, max_len=16).eval()
    docs = textmodels.document_ids(["The cat sat on the mat and ate a rat."], vocab)
    out = textmodels.fill_in_eval(gpt, bert, docs, vocab, every=4)
    assert out["blanks"] == 2 * 4  # two full windows of 16, blanks at 3, 7, 11, 15
    x = docs[0][:16]
    with torch.no_grad():
        logp = torch.log_softmax(gpt(x[None])[0].double(), -1)
    pos = torch.tensor([3, 7, 11, 15])
    first_window_nll = -logp[pos - 1, x[pos]].sum().item()
    assert 0 < first_window_nll
    # a direct loop over both windows: GPT from the unmasked left context, BERT with the blanks
    # masked, each blank scored on its own
    gpt_nll = bert_nll = 0.0
    gpt_right = bert_right = 0
    for w in (docs[0][:16], docs[0][16:32]):
        masked = w.clone()
        masked[pos] = vocab.mask_id
        with torch.no_grad():
            lb = torch.log_softmax(bert(masked[None], pos[None])[0].double(), -1)  # (4, V)
            for j, p in enumerate(pos.tolist()):
                lg = torch.log_softmax(gpt(w[None, :p])[0, -1].double(), -1)  # (V,)
                gpt_nll -= lg[w[p]].item()
                bert_nll -= lb[j, w[p]].item()
                gpt_right += int(lg.argmax() == w[p])
                bert_right += int(lb[j].argmax() == w[p])
    window_nll = -logp[pos - 1, x[pos]].sum().item()
    assert window_nll == pytest.approx(first_window_nll)
    assert out["gpt"]["bits"] == pytest.approx(gpt_nll / 8 / math.log(2), rel=1e-6)
    assert out["bert"]["bits"] == pytest.approx(bert_nll / 8 / math.log(2), rel=1e-6)
    assert out["gpt"]["accuracy"] == pytest.approx(gpt_right / 8)
    assert out["bert"]["accuracy"] == pytest.approx(bert_right / 8)
    last = textmodels.last_position_eval(gpt, bert, docs, vocab)
    assert last["predictions"] == 2
    with torch.no_grad():
        lp = torch.log_softmax(gpt(torch.stack([docs[0][:15], docs[0][16:31]]))[:, -1].double(),
                               -1)
    want = -lp[[0, 1], [docs[0][15], docs[0][31]]].mean().item() / math.log(2)
    assert last["gpt"]["bits"] == pytest.approx(want, rel=1e-6)
    nll, right = 0.0, 0
    for start in (0, 16):
        w = docs[0][start : start + 16].clone()
        target = int(w[-1])
        w[-1] = vocab.mask_id
        with torch.no_grad():
            lb = torch.log_softmax(bert(w[None], torch.tensor([[15]]))[0, 0].double(), -1)
        nll -= lb[target].item()
        right += int(lb.argmax() == target)
    assert last["bert"]["bits"] == pytest.approx(nll / 2 / math.log(2), rel=1e-6)
    assert last["bert"]["accuracy"] == pytest.approx(right / 2)


def test_heldout_sentences_and_windows(corpus):
    s = textmodels.heldout_sentences(corpus, 6)
    assert len(s) == 6 and all(36 <= len(x) <= 52 and x.endswith(".") for x in s)
    w = textmodels.heldout_windows(corpus, 64, 10)
    assert len(w) == 10 and {len(x) for x in w} == {64}


def test_bert_generate_appends_ordinary_tokens(corpus):
    torch.manual_seed(0)
    vocab = corpus.vocab
    bert = CharBERT(len(vocab), 16, 32, 2, 1, max_len=8).eval()
    out = textmodels.bert_generate(bert, vocab.encode("abcdefghij"), 5, vocab.mask_id,
                             generator=torch.Generator().manual_seed(0))
    assert out.shape == (15,) and int(out[10:].min()) >= 3


def test_explorer_moves_with_its_controls():
    box = ch12.EXPLORER_DEMOS["heads"]()
    first = box.state["weights"].copy()
    box.controls["head"].value = 1
    assert not (box.state["weights"] == first).all()
    box.controls["sentence"].value = 1
    assert len(box.state["top"]) == len("Attention is kernel regression.")
    box.controls["model"].value = "bidirectional"
    assert box.state["title"].startswith("bidirectional, layer 0, head 1")
    w = box.state["weights"]
    assert ch12.top_keys(w, "Attention is kernel regression.")[0].startswith("A→")
    with pytest.raises(ValueError, match="sentence"):
        ch12.heads_explorer({"m": [("abc", [torch.rand(2, 4, 4).numpy()])]})


CHECKS = [
    (ch12.check_attention_total, 10, 7),
    (ch12.check_unchanged_positions, 19 * 0.1 * 97 / 96, 12.8),
    (ch12.check_bigram_saving, 161.557, 111.98),
]


@pytest.mark.parametrize("check,right,wrong", CHECKS)
def test_checks_accept_right_hint_wrong_and_never_print_the_answer(check, right, wrong, capsys):
    assert check(None) is False
    assert capsys.readouterr().out.strip() == REPLACE_NONE
    assert check(right) is True
    assert "Correct" in capsys.readouterr().out
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "Hint" in out and f"{right:.3g}" not in out and str(right) not in out


def test_bracket_check():
    def good(s):
        stack, out = [], []
        for i, c in enumerate(s):
            if c == "(":
                stack.append(i)
            elif c == ")" and stack:
                out.append((i, stack.pop()))
        return out

    assert ch12.check_bracket_pairs(good) is True
    assert ch12.check_bracket_pairs(lambda s: [(k, q) for q, k in good(s)]) is False
    assert ch12.check_bracket_pairs(42) is False


def test_build_bert_starts_positions_from_the_sinusoidal_table():
    from helpers.transformer import PositionalEncoding

    m = textmodels.build_bert(20, {"num_hiddens": 8, "ffn_num_hiddens": 16, "num_heads": 2,
                             "num_blks": 1, "max_len": 10, "dropout": 0.0}, seed=0)
    torch.testing.assert_close(m.encoder.pos_embedding.detach(), PositionalEncoding(8, 0.0, 10).P)
    d2l_like = textmodels.build_bert(20, {"num_hiddens": 8, "ffn_num_hiddens": 16, "num_heads": 2,
                                    "num_blks": 1, "max_len": 10, "dropout": 0.0}, seed=0,
                               sinusoidal_start=False)
    assert d2l_like.encoder.pos_embedding.std() > 0.8  # d2l's randn start


def test_lookalike_head_check(capsys):
    # two heads, one sentence of 4 characters: head 0 looks at t - 1 on it, head 1 at itself
    prev = torch.eye(4).roll(-1, 1).tril()
    prev[0, 0] = 1.0
    weights = [[torch.stack([prev, torch.eye(4)]).numpy()]]  # one sentence, one layer
    assert ch12.check_lookalike_head(None, weights, [[0.2, 0.1]]) is False
    assert ch12.check_lookalike_head((0, 0), weights, [[0.2, 0.1]]) is True
    assert "Correct" in capsys.readouterr().out
    assert ch12.check_lookalike_head((0, 0), weights, [[0.9, 0.1]]) is False  # high score
    assert "score is high" in capsys.readouterr().out
    assert ch12.check_lookalike_head((0, 1), weights, [[0.2, 0.1]]) is False  # does not look so
    assert "Hint" in capsys.readouterr().out
    assert ch12.check_lookalike_head((0, 5), weights, [[0.2, 0.1]]) is False
    assert ch12.check_lookalike_head("0, 0", weights, [[0.2, 0.1]]) is False


def test_uniform_score_and_strong_rows():
    texts = ["abcd"]
    causal = textmodels.uniform_score(texts, textmodels.previous_char_pairs, causal=True)
    assert causal == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert textmodels.uniform_score(texts, textmodels.previous_char_pairs, causal=False) == 0.25
    with pytest.raises(ValueError, match="no"):
        textmodels.uniform_score(["a"], textmodels.previous_char_pairs, causal=True)
    causal_uniform = torch.ones(3, 3).tril()
    causal_uniform /= causal_uniform.sum(1, keepdim=True)
    assert ch12.strong_rows(causal_uniform.numpy()).tolist() == [False, False, False]
    rows = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0.7, 0.1, 0.1, 0.1],
                         [0.2, 0.3, 0.4, 0.1]])  # twice uniform: -, 1.0, 0.5, 0.5
    assert ch12.strong_rows(rows.numpy()).tolist() == [False, False, True, False]


def _unchanged_mean(corpus, num_windows: int, seed: int) -> float:
    """What exercise 2 asks the reader to measure: apply `mask_tokens` to random windows of 128
    training characters and average, per window, the picked positions whose input is unchanged."""
    vocab = corpus.vocab
    ids = vocab.encode(corpus.stream("train"))
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - 128, (num_windows,), generator=g)
    windows = ids[starts[:, None] + torch.arange(128)]  # (N, 128)
    inputs, positions, labels = mask_tokens(windows, len(vocab), vocab.mask_id, generator=g)
    return float((inputs.gather(1, positions) == labels).sum(1).float().mean())


def test_unchanged_positions_accepts_exact_and_measured_and_rejects_the_usual_mistakes(corpus,
                                                                                      capsys):
    vocab = corpus.vocab
    ordinary = len(vocab) - 3  # random replacements draw one of these
    assert ch12.check_unchanged_positions(19 * 0.1 * (1 + 1 / ordinary)) is True  # exact
    assert ch12.check_unchanged_positions(1.9) is True  # the 10 % rule alone
    for seed in range(5):  # the measured mean the exercise asks for (10,000 windows)
        measured = _unchanged_mean(corpus, 10_000, seed)
        assert ch12.check_unchanged_positions(measured) is True, measured
    big = _unchanged_mean(corpus, 200_000, 99)  # the exact value is what mask_tokens does
    assert abs(big - 19 * 0.1 * (1 + 1 / ordinary)) < 0.01
    capsys.readouterr()
    for wrong in (19 * 0.15, 128 * 0.1, 0.8 * 19, 0, 19, 19.2, 2.0, 1.8, 128 * 0.15 * 0.8):
        assert ch12.check_unchanged_positions(wrong) is False, wrong
        out = capsys.readouterr().out
        assert "Hint" in out and "1.9" not in out


def _bigram_saving_by_counting(train: str, sentence: str, vocab_size: int) -> float:
    """Witten-Bell bigram counted directly, interpolated with the unigram, itself with uniform:
    P1(c) = (C(c) + T / V) / (N + T), T the distinct characters, N the characters;
    P2(c | b) = (C(bc) + T(b) P1(c)) / (C(b) + T(b)), C(b) the bigrams starting with b, T(b) the
    distinct characters after b; V the vocabulary. Returns the sum of log2 V + log2 P2."""
    chars = Counter(train)
    pairs = Counter(zip(train, train[1:]))
    after: dict[str, Counter] = {}
    for (b, c), n in pairs.items():
        after.setdefault(b, Counter())[c] = n
    total = 0.0
    for b, c in zip(sentence, sentence[1:]):
        p1 = (chars[c] + len(chars) / vocab_size) / (len(train) + len(chars))
        followers = after[b]
        p = (followers[c] + len(followers) * p1) / (sum(followers.values()) + len(followers))
        total += math.log2(vocab_size) + math.log2(p)
    return total


def test_bigram_saving_check_against_direct_counts(corpus, capsys):
    train, V = corpus.stream("train"), len(corpus.vocab)
    s = ch12.BIGRAM_SENTENCE
    assert corpus.vocab.normalize(s) == s
    want = _bigram_saving_by_counting(train, s, V)
    assert 100 < want < 250
    assert ch12.check_bigram_saving(want) is True
    assert ch12.check_bigram_saving(round(want, 2)) is True
    capsys.readouterr()
    bigram_bits = (len(s) - 1) * math.log2(V) - want
    for wrong in (want / (len(s) - 1), want * math.log(2), -want, bigram_bits,
                  want - (len(s) - 1) * math.log2(V / (V - 3)), want + 1, 0):
        assert ch12.check_bigram_saving(wrong) is False, wrong
        out = capsys.readouterr().out
        assert "Hint" in out and f"{want:.1f}" not in out and f"{want:.3g}" not in out
