"""Explicit 16-lane float32 vectors for Numba kernels: a value type held in one AVX-512
register (two AVX2 registers, four SSE ones: LLVM splits it where the CPU is narrower) and
the few operations the direct kernels need, written as LLVM IR.

Why not leave it to LLVM's loop vectoriser: a loop over the channels that reads many rows
and writes several output pixels vectorises only behind run-time overlap checks between
every written and every read range (Numba's arrays carry no ``noalias``); with 4 output
pixels × 25 taps those checks outnumber the work, or exceed LLVM's limit and the loop runs
scalar. With explicit vectors the kernel says what it means: one channel block of 16 lanes,
its weights in registers, partial sums in registers, masked loads and stores for the last
block (lanes past ``m`` are neither read nor written, so a channel count needs not be a
multiple of 16).

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def axpy(a, x, y, n):  # y[:n] += a[:n] * x[:n], 16 lanes at a time
...     for i in range(0, n, LANES):
...         m = min(LANES, n - i)
...         vstore(y, i, vfma(vload(a, i, m), vload(x, i, m), vload(y, i, m)), m)
>>> a, x, y = (np.arange(20, dtype=np.float32) for _ in range(3))
>>> axpy(a, x, y, 19); y[17:]  # y[19] untouched
array([306., 342.,  19.], dtype=float32)
"""
from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

LANES = 16


class F32x16(types.Type):
    """Numba's type of a 16-lane float32 vector (an LLVM ``<16 x float>`` value)."""

    def __init__(self):
        super().__init__(name="f32x16")


f32x16 = F32x16()
_VEC = ir.VectorType(ir.FloatType(), LANES)


@register_model(F32x16)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _mask(builder, m):
    """Lanes 0…m−1 on: ``<0, 1, …, 15> < splat(m)``."""
    i32 = ir.IntType(32)
    lanes = ir.Constant(ir.VectorType(i32, LANES), [ir.Constant(i32, i) for i in range(LANES)])
    mv = builder.trunc(m, i32) if m.type.width > 32 else m
    splat = builder.insert_element(ir.Constant(ir.VectorType(i32, LANES), ir.Undefined), mv, ir.Constant(i32, 0))
    splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))
    return builder.icmp_signed("<", lanes, splat)


def _address(context, builder, aryty, ary, i):
    """Pointer to element ``i`` of a 1-D contiguous array, as ``<16 x float>*``."""
    a = context.make_array(aryty)(context, builder, ary)
    p = builder.gep(a.data, [i])
    return builder.bitcast(p, _VEC.as_pointer())


def _check(ary):
    if not (isinstance(ary, types.Array) and ary.ndim == 1 and ary.dtype == types.float32 and ary.layout == "C"):
        raise TypeError(f"a 1-D C-contiguous float32 array, got {ary}")


@intrinsic
def vload(typingctx, ary, i, m):
    """``ary[i:i + m]`` as a vector, lanes m…15 zero (a masked load: nothing past m is read)."""
    _check(ary)

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [_VEC.as_pointer(), ir.IntType(32), _mask(builder, args[2]).type,
                                                   _VEC]), "llvm.masked.load.v16f32.p0v16f32")
        return builder.call(fn, [p, ir.Constant(ir.IntType(32), 4), _mask(builder, args[2]), ir.Constant(_VEC, None)])

    return f32x16(ary, types.intp, types.intp), codegen


@intrinsic
def vstore(typingctx, ary, i, v, m):
    """``ary[i:i + m] = v[:m]`` (a masked store: nothing past m is written)."""
    _check(ary)

    def codegen(context, builder, sig, args):
        p = _address(context, builder, sig.args[0], args[0], args[1])
        mask = _mask(builder, args[3])
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [_VEC, _VEC.as_pointer(), ir.IntType(32), mask.type]),
            "llvm.masked.store.v16f32.p0v16f32")
        builder.call(fn, [args[2], p, ir.Constant(ir.IntType(32), 4), mask])
        return context.get_dummy_value()

    return types.none(ary, types.intp, f32x16, types.intp), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a·b + c`` lane by lane, one rounding (a fused multiply-add)."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32")
        return builder.call(fn, list(args))

    return f32x16(f32x16, f32x16, f32x16), codegen


def _binary(op: str, name: str, doc: str):
    def impl(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return getattr(builder, op)(*args)

        return f32x16(f32x16, f32x16), codegen

    impl.__doc__, impl.__name__, impl.__qualname__ = doc, name, name
    return intrinsic(impl)


vmul = _binary("fmul", "vmul", "``a·b`` lane by lane.")
vadd = _binary("fadd", "vadd", "``a + b`` lane by lane.")


@intrinsic
def vsplat(typingctx, s):
    """A vector of 16 copies of the float32 ``s``.

    >>> import numpy as np
    >>> from numba import njit
    >>> @njit
    ... def scale(x, a):  # x[:16] · a, x[:16] + a
    ...     v = vload(x, 0, LANES)
    ...     vstore(x, 0, vadd(vmul(v, vsplat(a)), vsplat(a)), LANES)
    >>> x = np.ones(16, np.float32); scale(x, np.float32(3)); float(x[15])
    6.0
    """

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        u = ir.Constant(_VEC, ir.Undefined)
        v = builder.insert_element(u, args[0], ir.Constant(i32, 0))
        return builder.shuffle_vector(v, u, ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))

    return f32x16(types.float32), codegen


@intrinsic
def prefetch(typingctx, ary, i):
    """A hint to bring the cache line of ``ary[i]`` into the L2 cache (``prefetcht1``): no
    value, no fault (an address past the array is allowed and ignored).

    >>> import numpy as np
    >>> from numba import njit
    >>> @njit
    ... def touch(a):
    ...     for i in range(0, a.size, 16):
    ...         prefetch(a, i)
    >>> touch(np.zeros(40, np.float32))
    """
    _check(ary)

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        p = builder.bitcast(builder.gep(a.data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [p.type, i32, i32, i32]), "llvm.prefetch.p0i8")
        # read (0), locality 2 (the L2: the line is used a whole output row later), data (1)
        builder.call(fn, [p, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(ary, types.intp), codegen

