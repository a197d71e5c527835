"""Arrays from files a user gives (weights, input batches), read safely: headers first.

``.npy``, ``.npz`` and ``.safetensors`` files are opened by their headers before any data is
read: each tensor's name, dtype and shape, and where its bytes lie. The caller checks those
(against the shapes the model needs, against a byte budget) before :func:`read` loads
anything, so a zip bomb or a header declaring 2⁴⁰ floats is refused with a one-line
:class:`~cnngraph.ir.errors.InputError` at a few kilobytes of memory. Floating-point data
(float16/32/64) is accepted and converted to float32 (the conversion is named in a
:class:`ConversionWarning`); integer, boolean, complex and object arrays are refused;
non-finite values are an error naming the tensor unless allowed.

>>> import numpy as np, tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
>>> np.save(p, np.ones((2, 3), np.float64))
>>> heads = headers(p)
>>> heads["x"].shape, heads["x"].dtype
((2, 3), 'float64')
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     read(p, heads)["x"].dtype
dtype('float32')
"""
from __future__ import annotations

import json
import math
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnngraph.ir.errors import InputError

FLOAT_DTYPES = ("float16", "float32", "float64")
SAFETENSORS_DTYPES = {"F16": "float16", "F32": "float32", "F64": "float64", "BF16": "bfloat16",
                      "I8": "int8", "U8": "uint8", "I16": "int16", "U16": "uint16", "I32": "int32",
                      "U32": "uint32", "I64": "int64", "U64": "uint64", "BOOL": "bool",
                      "F8_E4M3": "float8_e4m3", "F8_E5M2": "float8_e5m2"}
MAX_HEADER = 100 * 2**20  # bytes of a safetensors JSON header, as the format's own reader allows


class ConversionWarning(UserWarning):
    """Arrays of a file were converted to float32 (their dtype is named)."""


@dataclass(frozen=True)
class Header:
    """One tensor of a file, as its header describes it (no data read)."""

    name: str
    dtype: str
    shape: tuple
    where: tuple  # how to read it: ("npy", offset) | ("npz", member) | ("st", begin, end)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * _itemsize(self.dtype)


def _itemsize(dtype: str) -> int:
    return {"bfloat16": 2, "float8_e4m3": 1, "float8_e5m2": 1}.get(dtype) or np.dtype(dtype).itemsize


def _npy_header(f, label: str):
    """(shape, dtype name, fortran) of the .npy stream ``f``, positioned after the header."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f, max_header_size=10000)
    except Exception as e:  # numpy says ValueError, EOFError, SyntaxError... for bad bytes
        raise InputError(f"{label}: not a valid .npy array ({' '.join(str(e).split())[:120]})") from None
    if dtype.hasobject:
        raise InputError(f"{label}: holds Python objects (pickled data); only float arrays are read")
    return tuple(int(s) for s in shape), dtype, fortran


def headers(path, what: str = "file") -> dict:
    """``{name: Header}`` of every tensor in ``path`` (.npy, .npz or .safetensors), reading
    headers only. A ``.npy`` file holds one tensor, named by the file's stem."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such {what}: {p}")
    if not p.is_file():
        raise InputError(f"{what} {p}: not a file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        with open(p, "rb") as f:
            shape, dtype, fortran = _npy_header(f, str(p))
            offset = f.tell()
        h = Header(p.stem, dtype.name, shape, ("npy", offset, fortran, dtype.str))
        if offset + h.nbytes > p.stat().st_size:
            raise InputError(f"{p}: header declares {'×'.join(map(str, shape)) or 'a scalar'} {dtype.name} "
                             f"({_fmt(h.nbytes)}) but the file holds {_fmt(p.stat().st_size - offset)} of data")
        return {h.name: h}
    if suffix == ".npz":
        return _npz_headers(p)
    if suffix == ".safetensors":
        return _safetensors_headers(p)
    raise InputError(f"{what} {p.name}: must be .npy, .npz or .safetensors")


def _npz_headers(p: Path, only_npy: bool = False) -> dict:
    """Every member's header (``only_npy``: the ``.npy`` members only, the others left unread)."""
    try:
        z = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(f"{p}: not a valid .npz (a zip of .npy arrays): {' '.join(str(e).split())}") from None
    out = {}
    with z:
        for info in z.infolist():
            if only_npy and not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            label = f"{p}: array {name!r}"
            try:
                with z.open(info) as f:
                    shape, dtype, fortran = _npy_header(f, label)
                    head_len = f.tell()
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as e:
                raise InputError(f"{label}: cannot be read from the archive: {' '.join(str(e).split())}") from None
            h = Header(name, dtype.name, shape, ("npz", info.filename, fortran, dtype.str))
            # The zip directory states the member's size: the header must agree with it.
            if head_len + h.nbytes != info.file_size:
                raise InputError(f"{label}: header declares {'×'.join(map(str, shape))} {dtype.name} "
                                 f"({_fmt(h.nbytes)}) but the archive member holds {_fmt(info.file_size - head_len)}")
            out[name] = h
    return out


def _safetensors_headers(p: Path) -> dict:  # noqa: C901 - one check per way a header can lie
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"{p}: not a safetensors file ({size} bytes, shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise InputError(f"{p}: not a safetensors file (declares a {n:,}-byte header in a {size:,}-byte file)")
        raw = f.read(n)
    try:
        meta = json.loads(raw.decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("the header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{p}: not a safetensors file (its header is not JSON: {' '.join(str(e).split())[:80]})") from None
    base, out = 8 + n, {}
    for name, d in meta.items():
        if name == "__metadata__":
            continue
        try:
            dtype = SAFETENSORS_DTYPES[d["dtype"]]
            shape = tuple(int(s) for s in d["shape"])
            begin, end = (int(x) for x in d["data_offsets"])
        except KeyError:
            raise InputError(f"{p}: tensor {name!r} has a malformed header entry (dtype, shape, data_offsets)") from None
        except (TypeError, ValueError, AttributeError):
            raise InputError(f"{p}: tensor {name!r} has a malformed header entry") from None
        if any(s < 0 for s in shape):
            raise InputError(f"{p}: tensor {name!r} has a negative size in its shape {shape}")
        h = Header(name, dtype, shape, ("st", base + begin, base + end))
        if not 0 <= begin <= end or base + end > size or end - begin != h.nbytes:
            raise InputError(f"{p}: tensor {name!r} declares {'×'.join(map(str, shape))} {dtype} "
                                 f"({_fmt(h.nbytes)}) at bytes {begin}..{end} of a {_fmt(size - base)} data section")
        out[name] = h
    return out


def check_dtypes(heads: dict, label: str) -> None:
    """Refuse anything but float16/32/64, naming the first offending tensor."""
    for h in heads.values():
        if h.dtype not in FLOAT_DTYPES:
            kind = ("integer" if h.dtype.startswith(("int", "uint", "I", "U")) else "boolean" if h.dtype == "bool"
                    else "complex" if h.dtype.startswith("complex") else h.dtype)
            raise InputError(f"{label}: tensor {h.name!r} is {h.dtype} ({kind}); only float16, float32 and "
                             f"float64 are read (convert it first: a silent cast would change its values)")


def read_array(f, dtype, count: int, block: int = 1 << 20) -> np.ndarray:
    """``count`` values of ``dtype`` read from the binary file ``f`` straight into a new array,
    ``block`` bytes at a time: a member of a zip archive (``.npz``) read whole would be joined
    from its chunks, briefly holding the tensor twice more (VGG-16's 411 MB classifier: 312 MB
    more at the peak of loading). A short file is an error.

    >>> import io
    >>> read_array(io.BytesIO(np.arange(5, dtype="<f4").tobytes()), np.dtype("<f4"), 5, block=8).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    a = np.empty(count, dtype)
    mv = memoryview(a.view(np.uint8).reshape(-1))
    pos = 0
    while pos < len(mv):
        n = min(block, len(mv) - pos)
        if hasattr(f, "readinto") and not isinstance(f, zipfile.ZipExtFile):
            got = f.readinto(mv[pos:pos + n])
        else:
            chunk = f.read(n)
            got = len(chunk)
            mv[pos:pos + got] = chunk
        if not got:
            raise InputError(f"{getattr(f, 'name', 'file')}: ends {len(mv) - pos:,} bytes before its tensor does")
        pos += got
    return a


def nonfinite(a: np.ndarray, block: int = 1 << 20) -> int:
    """How many values of ``a`` are NaN or infinite, counted ``block`` values at a time (the
    boolean mask of a whole tensor would cost a byte per value, twice: 200 MB for VGG-16's
    classifier).

    >>> nonfinite(np.array([1.0, np.nan, np.inf, -2.0], np.float32)), nonfinite(np.ones((3, 5)), block=4)
    (2, 0)
    """
    flat = a.reshape(-1)
    return sum(int(flat[i:i + block].size - np.count_nonzero(np.isfinite(flat[i:i + block])))
               for i in range(0, flat.size, block))


def zip_headers(path, what: str = "file") -> dict:
    """``{name: Header}`` of the ``.npy`` members of a zip archive of any suffix (a saved plan,
    :mod:`cnngraph.compiler.plan_file`), reading headers only; :func:`read` reads them."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such {what}: {p}" if not p.exists() else f"{what} {p}: not a file")
    return _npz_headers(p, only_npy=True)


def read(path, heads: dict, allow_nonfinite: bool = False) -> dict:
    """The arrays described by ``heads`` (from :func:`headers`, already checked), as float32."""
    p = Path(path)
    check_dtypes(heads, str(p))
    out, converted = {}, {}
    z = zipfile.ZipFile(p) if any(h.where[0] == "npz" for h in heads.values()) else None
    try:
        for name, h in heads.items():
            kind = h.where[0]
            if kind == "npy" or kind == "npz":
                _, loc, fortran, dstr = h.where
                f = open(p, "rb") if kind == "npy" else z.open(loc)
                with f:
                    if kind == "npy":
                        f.seek(loc)
                    else:
                        _npy_header(f, str(p))
                    a = read_array(f, np.dtype(dstr), h.size)
                a = a.reshape(h.shape[::-1]).T if fortran else a.reshape(h.shape)
            else:
                _, begin, end = h.where
                with open(p, "rb") as f:
                    f.seek(begin)
                    dt = np.dtype(h.dtype).newbyteorder("<")
                    a = read_array(f, dt, (end - begin) // dt.itemsize).reshape(h.shape)
            if a.dtype != np.float32:
                converted[h.dtype] = converted.get(h.dtype, 0) + 1
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not allow_nonfinite:
                bad = nonfinite(a)
                if bad:
                    raise InputError(f"{p}: tensor {name!r} holds {bad:,} non-finite values (NaN or "
                                     f"infinity; --allow-nonfinite to run anyway)")
            out[name] = a
    finally:
        if z is not None:
            z.close()
    if converted:
        warnings.warn(f"{p}: converted to float32: " + ", ".join(f"{n} {d} tensor{'s' * (n > 1)}"
                                                                for d, n in converted.items()), ConversionWarning)
    return out


def _fmt(b: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{b} B"


def memory_available() -> int | None:
    """Bytes the machine can still give (``MemAvailable`` of /proc/meminfo), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
