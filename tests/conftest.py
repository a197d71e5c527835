"""Shared set-up of the test suite.

pytest puts this folder on ``sys.path`` (it holds this conftest and no ``__init__.py``), so
test modules, those of ``tests/gpu`` too, import the shared helpers by name and never one
another:

* ``cases``: the per-op case catalogue (:data:`cases.OP_CASES`) used by the core, ONNX,
  Numba, CuPy and registry tests, and the suite's error measure :func:`cases.rel_err`;
* ``onnx_cases``: the every-op network, small zoo inputs and ONNX Runtime runs;
* ``torch_models``: checks of PyTorch models through ``from_torch`` and ONNX.
"""
