"""Every docstring example of the library runs (``make test`` runs them with the suite).

Each module is imported under its installed name (``cnngraph.dsl.knobs``, not ``dsl.knobs``),
so its examples see the same classes the library uses. A module whose optional dependency
(torch, onnx, matplotlib, cupy) is missing is skipped with the reason.
"""
import doctest
import importlib
import pkgutil

import pytest

import cnngraph


def _modules():
    names = ["cnngraph"]
    for info in pkgutil.walk_packages(cnngraph.__path__, "cnngraph."):
        names.append(info.name)
    for pkg in ("cnngraph.dsl", "cnngraph.backends"):  # installed from dsl/ and backends/
        mod = importlib.import_module(pkg)
        names += [pkg] + [i.name for i in pkgutil.walk_packages(mod.__path__, pkg + ".")]
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    try:
        mod = importlib.import_module(name)
    except Exception as e:  # an optional extra (torch, onnx, cupy...), raised as is or as the cause of ours
        if not (isinstance(e, ImportError) or isinstance(e.__cause__, ImportError)):
            raise
        pytest.skip(f"{name}: {e}")
    tests = [t for t in doctest.DocTestFinder().find(mod, name) if t.examples]
    if not tests:
        pytest.skip(f"{name} has no docstring examples")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        if any("import torch" in e.source for e in t.examples):
            pytest.importorskip("torch")
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output above)"
