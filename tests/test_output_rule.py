"""The book's output rule holds: nothing nbval compares depends on training, timing or round-off.

Exact computations are compared to the digit; a number from training or timing is printed in a cell
marked `# NBVAL_IGNORE_OUTPUT`, and what the prose claims about it is checked by
`helpers.claims.claim` in a compared line without digits. tools/output_rule.py re-runs a notebook
with learning rates and clocks perturbed (as another PyTorch or machine perturbs them) and lists
compared cells whose output moved; round-off printed at full precision is found in the stored
outputs. The first tests show on a small notebook that the check fails where it must.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from output_rule import check, roundoff_at_full_precision  # tools/ is on pytest's pythonpath

from helpers.claims import ClaimError, claim, claim_between

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

TRAIN = """\
import torch
torch.manual_seed(0)
x = torch.randn(64, 3)
y = x @ torch.tensor([1.0, -2.0, 0.5])
w = torch.zeros(3, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.05)

def train(steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
    return loss.item()
"""

CELLS = {
    "setup": TRAIN,
    "trained, unmarked": "print(f'loss {train(10):.4f}')",
    "trained model used later, unmarked": "print(f'w[0] = {w[0].item():.4f}')",
    "trained, marked": "# NBVAL_IGNORE_OUTPUT\nloss = train(10)\nprint(f'loss {loss:.4f}')",
    "claim about it": (
        "from helpers.claims import claim\n"
        "claim('the loss falls below 4 (starts near 5.3)', loss < 4)"
    ),
    "timed, unmarked": (
        "import time\nt0 = time.perf_counter()\ns = sum(range(10**5))\n"
        "print(f'{(time.perf_counter() - t0) * 1e3:.2f} ms')"
    ),
    "exact": "print('exact:', (x.sum() * 2).item() == (x * 2).sum().item(), x.shape)",
    "round-off at full precision": "print('max |diff|:', 3.5e-16)",
    "round-off as a bound": "print('max |diff| < 1e-12:', True)",
    "marked without reason": "# NBVAL_IGNORE_OUTPUT\nprint(x_train := 2, 'timeout')",
    "marked, says why": "# NBVAL_IGNORE_OUTPUT\n# trained: uses w\nprint(w.sum().item() > -100)",
}


@pytest.fixture(scope="module")
def small_notebook(tmp_path_factory) -> Path:
    """A notebook with one cell of each kind, executed and stored like the book's."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS.values()]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path_factory.mktemp("rule") / "small.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def small_report(small_notebook):
    return check(small_notebook)


def cell_number(name: str) -> int:
    return list(CELLS).index(name) + 1


def test_a_trained_or_timed_number_without_a_marker_fails_the_rule(small_report):
    moved = {m.cell for m in small_report.moved}
    assert cell_number("trained, unmarked") in moved
    assert cell_number("trained model used later, unmarked") in moved
    assert cell_number("timed, unmarked") in moved


def test_marked_numbers_claims_and_exact_output_pass_the_rule(small_report):
    moved = {m.cell for m in small_report.moved}
    for name in ("setup", "trained, marked", "claim about it", "exact", "round-off as a bound",
                 "marked, says why"):
        assert cell_number(name) not in moved, name
    assert len(moved) == 3


def test_a_marker_must_be_earned(small_report):
    needless = small_report.needless_markers
    assert len(needless) == 1 and f"cell {cell_number('marked without reason')} " in needless[0]


def test_round_off_printed_at_full_precision_fails_the_rule(small_notebook):
    found = roundoff_at_full_precision(small_notebook)
    assert len(found) == 1 and f"cell {cell_number('round-off at full precision')}:" in found[0]
    assert "3.5e-16" in found[0]


def test_claims_print_no_digits_and_fail_loudly(capsys):
    claim("accuracy >= 0.95", 0.97 >= 0.95)
    claim_between("loss in [0.3, 0.5]", 0.41, 0.3, 0.5)
    assert capsys.readouterr().out == "✓ accuracy >= 0.95\n✓ loss in [0.3, 0.5]\n"
    with pytest.raises(ClaimError, match=r"accuracy >= 0.95 \(measured 0.9\)"):
        claim("accuracy >= 0.95", 0.9 >= 0.95, measured=0.9)
    with pytest.raises(ClaimError, match="measured NaN"):
        claim_between("loss in [0.3, 0.5]", float("nan"), 0.3, 0.5)
    with pytest.raises(ValueError, match="states no comparison or tolerance"):
        claim("the model is good", True)
    with pytest.raises(TypeError, match="holds must be a bool"):
        claim("accuracy >= 0.95", 0.97)
    with pytest.raises(ValueError, match="low must be <= high"):
        claim_between("loss in [0.5, 0.3]", 0.4, 0.5, 0.3)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_chapter_follows_the_output_rule(path):
    problems = check(path).problems() + roundoff_at_full_precision(path)
    assert not problems, "\n".join(problems)
