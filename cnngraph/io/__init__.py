"""Files in and out, shared by every package: :mod:`cnngraph.io.files` writes outputs
atomically and checks output paths first; :mod:`cnngraph.io.arrays` reads weights and input
arrays by their headers before any data. Imports only the standard library, NumPy and
``cnngraph.ir.errors``.

>>> import os, tempfile
>>> from cnngraph.io.files import write_text
>>> path = os.path.join(tempfile.mkdtemp(), "out.txt")
>>> _ = write_text(path, "written whole or not at all"); open(path).read()
'written whole or not at all'
"""
