"""One layer name everywhere: table rows (default and --all), notes and diagram --names agree."""
import re

from cnngraph import analyze, zoo
from cnngraph.cli import main
from cnngraph.ir import graph
from cnngraph.present.render import to_dot
from cnngraph.present.tables import summarize_notes


def test_all_rows_name_untitled_activations_after_their_titled_layer(capsys):
    main(["table", "alexnet", "--all", "--format", "csv"])
    names = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names[:6] == ["input", "conv1", "conv1.relu", "pool1", "conv2", "conv2.relu"]
    assert "flatten.dropout" in names and "fc6.relu" in names and "fc6.dropout" in names
    assert not any(re.fullmatch(r"(features|classifier)\.\d+", n) for n in names)  # no torchvision node names


def test_rows_notes_and_diagram_names_agree():
    g = graph.as_graph(zoo.build("alexnet"))
    rep = analyze(g)
    names = graph.layer_names(g)
    assert [r.title for r in rep.rows] == [names[r.name] for r in rep.rows]
    notes = " ".join(summarize_notes(rep.notes, {r.name: r.title for r in rep.rows}))
    assert "pool1" in notes and "features.2" not in notes
    dot = to_dot(g, names=True, fold=False)
    assert ">conv1.relu</FONT>" in dot and ">features.1</FONT>" not in dot


def test_untitled_models_keep_node_names():
    g = graph.as_graph(zoo.build("resnet18"))
    names = graph.layer_names(g)
    assert all(names[n] == n for n in g.nodes)
