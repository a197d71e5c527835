"""Pooling as a linear operator (seed 004): ``vec(H̃) = A·vec(H)`` on one feature map.

Average pooling is linear: ``A`` holds ``1/n`` where output unit ``r`` averages input
``s`` over a window of ``n`` counted elements. Max pooling is linear only piecewise: at a
given input ``H`` it selects one element per window, so ``vec(H̃) = A(H)·vec(H)`` with a 0/1
selection matrix, which is also its Jacobian ``∂vec(H̃)/∂vec(H)`` there (backprop sends each
output's gradient to the selected input).

The **vec convention** is a parameter: ``order="F"`` (the default) is the mathematical vec,
stacking the columns (column-major: ``H[0,0], H[1,0], …``); ``order="C"`` stacks the rows
(row-major, NumPy's and PyTorch's ``flatten``). ``A`` depends on it: the two are related by
the commutation (perfect-shuffle) permutations of input and output.

Windows follow PyTorch exactly: output size from :func:`cnngraph.ir.ops.window_out` (padding,
dilation, ``ceil_mode``), padded positions never selected by max pooling, a tie won by the
first maximum in row-major scan order of the window, and average pooling dividing by the
window area clipped to the padded input (``count_include_pad=True``) or by the number of
real inputs in it (``False``), or by ``divisor_override``. Several channels pool
independently: for a C×H×W tensor flattened channel by channel the operator is
``I_C ⊗ A`` (:func:`per_channel`).

Seed 004's example, 4×4 → 2×2 with 2×2 windows, stride 2:

>>> X = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
>>> A = avgpool_matrix((4, 4), 2)
>>> A.shape
(4, 16)
>>> unvec(A * vec(X), (2, 2)).tolist()
[[13/4, 21/4], [2, 2]]
>>> unvec(maxpool_matrix(X, 2) * vec(X), (2, 2)).tolist()
[[6, 8], [3, 4]]
"""
from __future__ import annotations

import sympy

from cnngraph.ir.errors import ShapeError
from cnngraph.ir import ops
from cnngraph.ir.ops import Ctx, window_out


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _matrix(X) -> sympy.Matrix:
    M = X if isinstance(X, sympy.MatrixBase) else sympy.Matrix([[sympy.nsimplify(v) for v in row] for row in
                                                                _rows(X)])
    if M.rows == 0 or M.cols == 0:
        raise ShapeError("pooling matrix", "the input map must be a non-empty 2-D array", f"got {M.shape}")
    return M


def _rows(X):
    try:
        return X.tolist()  # numpy arrays
    except AttributeError:
        return [list(r) for r in X]


def index(i: int, j: int, shape, order: str = "F") -> int:
    """Position of element (i, j) of a ``shape`` map in its vec."""
    rows, cols = shape
    if order == "F":
        return j * rows + i
    if order == "C":
        return i * cols + j
    raise ValueError(f"order must be 'F' (column-major, the mathematical vec) or 'C' (row-major), got {order!r}")


def vec(X, order: str = "F") -> sympy.Matrix:
    """The column vector of a 2-D map's elements (exact: ints and fractions stay exact)."""
    M = _matrix(X)
    out = sympy.zeros(M.rows * M.cols, 1)
    for i in range(M.rows):
        for j in range(M.cols):
            out[index(i, j, M.shape, order)] = M[i, j]
    return out


def unvec(v, shape, order: str = "F") -> sympy.Matrix:
    """The inverse of :func:`vec`."""
    rows, cols = shape
    if len(v) != rows * cols:
        raise ShapeError("unvec", "vector length must equal rows × cols", f"{len(v)} ≠ {rows}×{cols}")
    return sympy.Matrix(rows, cols, lambda i, j: v[index(i, j, shape, order)])


def output_shape(in_hw, kernel, stride=None, padding=0, dilation=1, ceil_mode=False) -> tuple:
    """(H', W') of a pooling layer: the rule cnngraph's ``maxpool2d``/``avgpool2d`` use."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel), _pair(padding), _pair(dilation)
    sh, sw = _pair(stride if stride is not None else kernel)
    if 2 * ph > kh or 2 * pw > kw:
        raise ShapeError("pooling matrix", "pooling padding must be at most half the kernel",
                         f"kernel {kh}x{kw}, padding {ph},{pw}")
    ctx = Ctx("pooling matrix")
    H, W = in_hw
    return (window_out(ctx, H, kh, sh, ph, ph, dh, ceil_mode, "H"), window_out(ctx, W, kw, sw, pw, pw, dw, ceil_mode, "W"))


def _windows(in_hw, kernel, stride, padding, dilation, ceil_mode):
    """For each output (oi, oj): its window start, the real input positions in it, and its
    area clipped to the padded input (PyTorch's ``pool_size``)."""
    H, W = in_hw
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel), _pair(padding), _pair(dilation)
    sh, sw = _pair(stride if stride is not None else kernel)
    Ho, Wo = output_shape(in_hw, kernel, stride, padding, dilation, ceil_mode)
    for oi in range(Ho):
        for oj in range(Wo):
            h0, w0 = oi * sh - ph, oj * sw - pw
            cells = [(h0 + a * dh, w0 + b * dw) for a in range(kh) for b in range(kw)]
            inside = [(i, j) for i, j in cells if 0 <= i < H and 0 <= j < W]
            # PyTorch's avg_pool2d: the window is cut at the far padded edge before counting.
            area = (min(h0 + kh, H + ph) - h0) * (min(w0 + kw, W + pw) - w0)
            yield (oi, oj), inside, area
    return


def avgpool_matrix(in_hw, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                   divisor_override=None, order: str = "F") -> sympy.Matrix:
    """The exact (rational) matrix of average pooling on an ``in_hw`` map: (H'W') × (HW)."""
    in_hw = tuple(in_hw)
    out_hw = output_shape(in_hw, kernel, stride, padding, 1, ceil_mode)
    A = sympy.zeros(out_hw[0] * out_hw[1], in_hw[0] * in_hw[1])
    for (oi, oj), inside, area in _windows(in_hw, kernel, stride, padding, (1, 1), ceil_mode):
        n = divisor_override or (area if count_include_pad else len(inside))
        r = index(oi, oj, out_hw, order)
        for i, j in inside:
            A[r, index(i, j, in_hw, order)] = sympy.Rational(1, n)
    return A


def maxpool_matrix(X, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, order: str = "F") -> sympy.Matrix:
    """The 0/1 selection matrix of max pooling at input ``X`` (its Jacobian there).

    Each row has one 1, at the window's maximum; a tie goes to the first maximum in
    row-major order of the window, as PyTorch picks it.
    """
    M = _matrix(X)
    in_hw = M.shape
    out_hw = output_shape(in_hw, kernel, stride, padding, dilation, ceil_mode)
    A = sympy.zeros(out_hw[0] * out_hw[1], in_hw[0] * in_hw[1])
    for (oi, oj), inside, _ in _windows(in_hw, kernel, stride, padding, dilation, ceil_mode):
        best = None
        for i, j in inside:  # row-major scan: strictly greater replaces, so the first max stays
            if best is None or M[i, j] > M[best]:
                best = (i, j)
        A[index(oi, oj, out_hw, order), index(best[0], best[1], in_hw, order)] = 1
    return A


def per_channel(A, channels: int) -> sympy.Matrix:
    """``I_C ⊗ A``: the operator on C maps stacked one after the other (channels pool alone)."""
    return sympy.kronecker_product(sympy.eye(channels), A)


def for_node(g, node: str, X=None, order: str = "F") -> sympy.Matrix:
    """The matrix of a graph's pooling node on one channel of its input (``X``, a 2-D map,
    is needed for max pooling; its shape must be the node's input H×W)."""
    d = g.nodes[node]
    entry = ops.get(d["op"])
    if entry.window is None or entry.reduce is None:
        raise ShapeError(node, "not a max or average pooling layer", d["op"])
    w = entry.window(d["attrs"])
    H, W = g.nodes[d["inputs"][0]]["shape"][1:]
    pad = w.padding[:2]
    if tuple(w.padding[:2]) != tuple(w.padding[2:]):
        raise ShapeError(node, "pooling matrix supports symmetric padding only", f"padding {w.padding}")
    if entry.reduce == "avg":
        return avgpool_matrix((H, W), w.kernel, w.stride, pad, w.ceil_mode, d["attrs"]["count_include_pad"],
                              order=order)
    if X is None:
        raise ShapeError(node, "max pooling is linear only at a given input: pass X")
    if _matrix(X).shape != (H, W):
        raise ShapeError(node, "X must have the node's input size", f"X is {_matrix(X).shape}, input {H}×{W}")
    return maxpool_matrix(X, w.kernel, w.stride, pad, w.dilation, w.ceil_mode, order)
