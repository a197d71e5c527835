# Two commands do all the set-up on a fresh machine:
#   make demo   venv + install + Graphviz's dot and GNU OpenMP if missing, then AlexNet's table and a diagram
#   make test   the same set-up, then the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup dot openmp demo test test-fast test-models torch gallery browser-check bench clean gpu-setup gpu-test gpu-bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

# Graphviz's `dot` program: Debian's package when missing (root, or sudo where available).
dot:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing Graphviz (dot)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq graphviz >/dev/null; }
	@dot -V

# GNU OpenMP (libgomp.so.1), the threads of the Numba backend's parallel steps: Debian's
# package when Numba's OpenMP layer does not load. Without it the backend still runs, on
# Numba's own workqueue threads (slower per step; plans run one at a time).
openmp: $(STAMP)
	@$(PY) -c 'from numba.np.ufunc import omppool' 2>/dev/null || { \
	  echo "installing GNU OpenMP (libgomp1)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libgomp1 >/dev/null; }
	@$(PY) -c 'from numba.np.ufunc import omppool' 2>/dev/null && echo "OpenMP: libgomp.so.1 loads" || \
	  echo "OpenMP does not load: the Numba backend runs on Numba's workqueue threads"

setup: $(STAMP) dot openmp

demo: setup
	$(VENV)/bin/cnngraph table alexnet
	$(VENV)/bin/cnngraph render alexnet -o alexnet.svg

# PyTorch, torchvision and timm: optional (a large download on most machines), for
# cross-checks, from_torch and the model sweeps.
torch: $(STAMP)
	$(PIP) install -q 'torch==2.14.1' 'torchvision==0.29.1' timm onnxscript

# Every torchvision and timm CNN through from_torch and ONNX (long: `make test` runs a sample).
test-models: setup torch
	$(VENV)/bin/pytest -q -m models tests/test_torch_import.py tests/test_timm_models.py tests/test_pytorch_exporters.py

# The suite; tests/test_doctests.py runs every docstring example of the library with it.
test: setup
	$(VENV)/bin/pytest -q

# The IR, registry, analysis and compiler tests (no backend runs every zoo model): a minute or two.
test-fast: setup
	$(VENV)/bin/pytest -q tests/test_registry.py tests/test_core.py tests/test_compiler.py tests/test_formulas.py \
	  tests/test_receptive.py tests/test_pooling_matrix.py tests/test_properties.py

# Start-up of the command line against the commit before the package layout, and the
# analysis against its peers (each printing ratios measured in the same run).
bench: setup
	$(PY) benchmarks/bench_startup.py
	$(PY) benchmarks/bench_analyze.py

# On a machine with an NVIDIA GPU and its driver: CuPy (with the CUDA libraries it needs),
# then the GPU tests (every zoo model against the Numba backend) or the ResNet-50 benchmark
# against PyTorch with cuDNN (a CUDA build of torch: installed when torch is missing).
gpu-setup: $(STAMP)
	$(PIP) install -q -e '.[gpu]'

gpu-test: gpu-setup
	$(VENV)/bin/pytest -q -rs tests/gpu tests/test_cuda_sources.py

gpu-bench: gpu-setup
	$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q torch
	$(PY) benchmarks/bench_gpu_resnet50.py

gallery: setup
	$(VENV)/bin/cnngraph gallery

# Opens gallery/index.html in headless Chromium (Debian's package when missing) and checks
# that every diagram and chart rendered.
browser-check: setup
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Chromium"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
	$(PY) tests/browser_check.py gallery/index.html

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
