"""Files in and out, shared by every package: :mod:`cnngraph.io.files` writes outputs
atomically and checks output paths first; :mod:`cnngraph.io.arrays` reads weights and input
arrays by their headers before any data. Imports only the standard library, NumPy and
``cnngraph.ir.errors``."""
