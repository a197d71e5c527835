"""The text table is written directly (rich's layout is slow); it must be what rich draws."""
import pytest
from hypothesis import given, settings, strategies as st

from cnngraph import analyze, zoo
from cnngraph.ir.symbols import H, W
from cnngraph.present import tables


def _both(report, **kw):
    """(direct, rich) text of one report, through the same cells."""
    seen = {}

    def spy(title, head, body, foot, notes):
        seen["args"] = (title, head, body, foot, notes)
        return tables._rich_table(title, head, body, foot, notes)

    orig = tables._rich_text
    tables._rich_text = spy
    try:
        rich = tables.render(report, "text", **kw)
    finally:
        tables._rich_text = orig
    return tables._box_text(*seen["args"]), rich


@pytest.mark.parametrize("name, kw", [
    ("lenet5", dict()), ("lenet5", dict(style="exact")), ("alexnet", dict(hide=())), ("resnet50", dict()),
    ("resnet50", dict(style="groups", groups=2)), ("googlenet", dict(style="exact")), ("densenet121", dict(style="exact")),
    ("mobilenet_v2", dict()), ("nasnet_a_mobile", dict(style="groups", groups=1)), ("resnet56", dict(hide=()))])
def test_direct_text_table_is_rich_table(name, kw):
    direct, rich = _both(analyze(zoo.build(name)), **kw)
    if direct is None:  # wider than the console: only the exact style's concatenated inputs are
        assert kw.get("style") == "exact" and max(len(ln) for ln in rich.splitlines()) == tables.TEXT_WIDTH
    else:
        assert direct == rich


@pytest.mark.parametrize("name, input, kw", [("resnet18", (3, H, W), dict()), ("lenet5", (1, H, W), dict(style="exact")),
                                             ("resnet18", (3, 225, 225), dict()), ("alexnet", (3, 64, 64), dict())])
def test_direct_text_table_symbolic_and_odd_inputs(name, input, kw):
    report = analyze(zoo.build(name), input=input)
    direct, rich = _both(report, **kw)
    assert direct is None or direct == rich  # too wide: rich lays it out
    assert tables.render(report, "text", **kw) == rich


def test_wide_or_marked_up_tables_go_to_rich():
    head, foot = ["Layer", "x"], "Convention"
    assert tables._box_text("t", head, [["a", "1"], ["total", "1"]], foot, []) is not None
    assert tables._box_text("t", head, [["a", "9" * 300], ["total", "1"]], foot, []) is None
    assert tables._box_text("t", head, [["[bold]a", "1"], ["total", "1"]], foot, []) is None
    assert tables._box_text("t", head, [["a", "1"], ["total", "1"]], foot, ["x :smile: y"]) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab ,.-()", max_size=120), st.integers(1, 30))
def test_wrap_is_rich_wrap(text, width):
    import io

    from rich.console import Console

    c = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    c.print(text)
    assert "\n".join(tables._wrap(text, width)) + "\n" == c.export_text()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab ,.-()", min_size=1, max_size=80), st.integers(1, 30))
def test_centred_caption_is_rich_caption(text, width):
    direct = tables._box_text("T", ["a" * width], [["x"], ["total"]], text, [])
    rich = tables._rich_table("T", ["a" * width], [["x"], ["total"]], text, [])
    assert direct == rich
