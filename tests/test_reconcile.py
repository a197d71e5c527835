"""The seed reconciliation: every difference explained, every explanation recomputed."""
from pathlib import Path

import pytest

from cnngraph.zoo import reconcile

RESULTS = reconcile.results()
BY_KEY = {(r.claim.where, r.claim.quantity, r.claim.printed): r for r in RESULTS}


def find(where, quantity, printed):
    return BY_KEY[(where, quantity, printed)]


@pytest.mark.parametrize("r", RESULTS, ids=[f"{r.claim.where}|{r.claim.quantity}|{r.claim.printed}" for r in RESULTS])
def test_each_claim_matches_or_is_explained(r):
    c = r.claim
    if r.matches:
        assert not c.reason and not c.kind, "a matching number needs no reason"
    else:
        assert c.reason and c.kind in ("slip", "typo", "convention", "variant", "rounding"), c
    if c.reproduce is not None:
        assert r.reproduced, f"the stated reason does not give back the slide's {c.printed}"


def test_pinned_counts():
    # Adding or removing a claim, or a change in cnngraph's arithmetic, must be deliberate.
    differ = [r for r in RESULTS if not r.matches]
    assert (len(RESULTS), len(differ)) == (209, 51)


def test_key_differences():
    assert find("AlexNet table, conv4", "flop (M)", "145").ours_text == "150"
    assert find("GoogLeNet stem totals", "MFLOP", "418").ours_text == "481"
    assert find("AlexNet fc6 worked example", "FC params = 9216·4096 + 4096", "37,725,832").ours_text == "37,752,832"
    r = find("AlexNet table, fc6", "params (k)", "37,749")
    assert r.claim.kind == "convention" and r.reproduced  # bias left out gives back 37,749
    assert find("ResNeXt table (and 'C=64, G=4' examples), G = 4",
                "group width c solving 9Gc² + 8GCc − 17C² = 0 at C = 64 (nearest integer)", "24").matches


def test_formula_claims_come_from_graphs():
    formulas = [r for r in RESULTS if r.claim.formula]
    assert len(formulas) >= 25
    assert find("ResNet bottleneck block, 4C in and out", "total FLOPs", "17*H*W*C**2").matches


def test_gallery_copy_is_current():
    path = Path(__file__).parents[1] / "gallery" / "reconciliation.md"
    assert path.read_text() == reconcile.markdown(), "run: cnngraph reconcile -o gallery/reconciliation.md"


def test_cli(capsys, tmp_path):
    from cnngraph.cli import main

    out = tmp_path / "r.md"
    assert main(["reconcile", "-o", str(out)]) == 0
    assert out.read_text().startswith("# Seed reconciliation")
    assert main(["reconcile", "--format", "json"]) == 0
    assert '"printed": "145"' in capsys.readouterr().out


def test_googlenet_table1_reading():
    # The ops column is the paper network's multiply-adds; 3×3 stem row and linear params are weights / 1024.
    assert find("GoogLeNet Table 1, inception (3a)", "ops (M multiply-adds)", "128").matches
    stem = find("GoogLeNet Table 1, convolution 3×3/1 (with its 1×1 reduce)", "params (K)", "112")
    assert stem.claim.kind == "convention" and stem.reproduced
    assert find("GoogLeNet Table 1, inception (4a)", "ops (M multiply-adds)", "73").claim.kind == "rounding"
