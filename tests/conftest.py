"""Shared set-up of the test suite.

pytest puts this folder on ``sys.path`` (it holds this conftest and no ``__init__.py``), so
test modules, those of ``tests/gpu`` too, import the shared helpers by name and never one
another:

* ``cases``: the per-op case catalogue (:data:`cases.OP_CASES`) used by the core, ONNX,
  Numba, CuPy and registry tests, and the suite's error measure :func:`cases.rel_err`;
* ``onnx_cases``: the every-op network, small zoo inputs and ONNX Runtime runs;
* ``torch_models``: checks of PyTorch models through ``from_torch`` and ONNX.

Fixtures: ``host``, the CuPy backend's CUDA sources compiled for this machine's C++ compiler.
"""
import pytest


@pytest.fixture(scope="session")
def host():
    """The "host" device of the CuPy backend: every CUDA kernel compiled for the CPU."""
    from cnngraph.backends import cupy_backend as cb

    try:
        return cb.get_device("host")
    except Exception as e:
        pytest.skip(f"no host C++ compiler for the CUDA sources: {e}")


@pytest.fixture(scope="module")
def torch_one_thread():
    """PyTorch's references on one thread for a test module (``pytestmark =
    pytest.mark.usefixtures("torch_one_thread")``): its pool waits for every thread, which is
    slow on a loaded machine. torch is imported here, only by modules that need it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
