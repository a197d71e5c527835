"""Execution backends: the compiler's plan run with Numba (CPU) or CuPy (GPU)."""
