"""The ``file.py:function`` contract and ``Net`` accepted wherever a graph is."""
import pytest

from cnngraph import analyze
from cnngraph.cli import load_model, main
from cnngraph.compiler import compile
from cnngraph.dsl import Net, conv2d, flatten, linear, relu
from cnngraph.ir.errors import CnnGraphError
from cnngraph.ir.graph import as_graph
from cnngraph.present.render import to_dot
from cnngraph.compiler.weights import init

SOURCE = '''
from cnngraph.dsl import Net, conv2d, relu, flatten, linear

def build(input=(3, 8, 8), width=4):
    net = Net("mine")
    x = relu(conv2d(net.input(*input), width, 3, padding=1))
    linear(flatten(x), 10)
    return net

def graph_only(width=4):
    return build(width=width).graph

def needs(width):
    return build(width=width)

def bad():
    return 42

def anything(**kw):
    return build(**kw)
'''


@pytest.fixture
def mynet(tmp_path):
    p = tmp_path / "mynet.py"
    p.write_text(SOURCE)
    return str(p)


def small():
    net = Net("small")
    linear(flatten(relu(conv2d(net.input(3, 8, 8), 4, 3, padding=1))), 10)
    return net


def test_net_accepted_wherever_a_graph_is():
    net = small()
    assert analyze(net).total.params == analyze(net.graph).total.params == 4 * 27 + 4 + 4 * 64 * 10 + 10
    assert to_dot(net) == to_dot(net.graph)
    assert len(compile(net, init(net)).steps) == len(compile(net.graph, init(net.graph)).steps)
    with pytest.raises(CnnGraphError, match="expected a cnngraph graph or a cnngraph.dsl.Net, got int"):
        as_graph(3)


def test_options_and_input_passed_when_accepted(mynet):
    g = load_model(f"{mynet}:build", (3, 16, 16), {"width": 8})
    assert g.nodes["conv1"]["shape"] == (8, 16, 16)
    g = load_model(f"{mynet}:anything", (3, 16, 16), {"width": 2})
    assert g.nodes["conv1"]["shape"] == (2, 16, 16)


def test_input_applied_when_not_a_parameter(mynet):
    g = load_model(f"{mynet}:graph_only", (3, 4, 4), {})
    assert g.nodes["fc1"]["shape"] == (10,) and g.nodes["conv1"]["shape"] == (4, 4, 4)


@pytest.mark.parametrize("fn, options, message", [
    ("build", {"depth": 3}, r"has no parameter 'depth' for -O depth=\.\.\.; its parameters: input, width"),
    ("needs", {}, r"needs 'width': give it with -O width=VALUE"),
    ("bad", {}, r"returned a int; expected a graph, a DSL Net"),
    ("nope", {}, r"has no function 'nope'"),
])
def test_contract_errors(mynet, fn, options, message):
    with pytest.raises(CnnGraphError, match=message):
        load_model(f"{mynet}:{fn}", None, options)


def test_cli_error_is_one_line(mynet, capsys):
    assert main(["table", f"{mynet}:build", "-O", "depth=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "depth" in err and "Traceback" not in err


def test_unknown_zoo_model_suggests(capsys):
    assert main(["table", "resnt50"]) == 2
    assert "did you mean resnet50" in capsys.readouterr().err
