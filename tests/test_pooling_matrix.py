"""Pooling as a matrix (seed 004): exact operators, checked by hand and against PyTorch."""
import random

import pytest
import sympy

from cnngraph.dsl import Net, avgpool2d, maxpool2d
from cnngraph.ir.errors import ShapeError
from cnngraph.analysis.pooling_matrix import (avgpool_matrix, for_node, index, maxpool_matrix, output_shape, per_channel,
                                     unvec, vec)

torch = pytest.importorskip("torch")

SEED = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]  # seed 004's single depth slice
Q = sympy.Rational(1, 4)


@pytest.mark.parametrize("order", ["F", "C"])
def test_seed_example_both_vec_orders(order):
    A_avg = avgpool_matrix((4, 4), 2, order=order)
    A_max = maxpool_matrix(SEED, 2, order=order)
    assert A_avg.shape == A_max.shape == (4, 16)
    x = vec(SEED, order)
    assert unvec(A_max * x, (2, 2), order) == sympy.Matrix([[6, 8], [3, 4]])
    assert unvec(A_avg * x, (2, 2), order) == sympy.Matrix([[sympy.Rational(13, 4), sympy.Rational(21, 4)], [2, 2]])
    # each row of A_max has a single 1, at the window's maximum
    assert all(sum(A_max.row(i)) == 1 for i in range(4))


def test_seed_example_explicit_column_major():
    # vec stacks columns: H[0,0], H[1,0], H[2,0], H[3,0], H[0,1], ...
    assert vec(SEED).T.tolist()[0] == [1, 5, 3, 1, 1, 6, 2, 2, 2, 7, 1, 3, 4, 8, 0, 4]
    A = avgpool_matrix((4, 4), 2)
    want = sympy.zeros(4, 16)
    # output (0,0) → vec 0, (1,0) → 1, (0,1) → 2, (1,1) → 3
    for out, cells in {0: (0, 1, 4, 5), 1: (2, 3, 6, 7), 2: (8, 9, 12, 13), 3: (10, 11, 14, 15)}.items():
        for c in cells:
            want[out, c] = Q
    assert A == want
    M = maxpool_matrix(SEED, 2)
    # maxima 6 at H[1,1] (vec 5), 3 at H[2,0] (vec 2), 8 at H[1,3] (vec 13), 4 at H[3,3] (vec 15)
    assert [M.row(i).tolist()[0].index(1) for i in range(4)] == [5, 2, 13, 15]


def test_orders_are_permutations_of_each_other():
    A_F, A_C = avgpool_matrix((4, 6), 3, 2, 1), avgpool_matrix((4, 6), 3, 2, 1, order="C")
    out = output_shape((4, 6), 3, 2, 1)
    P_in = sympy.zeros(24, 24)
    P_out = sympy.zeros(out[0] * out[1], out[0] * out[1])
    for i in range(4):
        for j in range(6):
            P_in[index(i, j, (4, 6), "C"), index(i, j, (4, 6), "F")] = 1
    for i in range(out[0]):
        for j in range(out[1]):
            P_out[index(i, j, out, "C"), index(i, j, out, "F")] = 1
    assert A_C == P_out * A_F * P_in.T


CASES = [  # (H, W, kernel, stride, padding, ceil_mode, count_include_pad, dilation)
    (4, 4, 2, 2, 0, False, True, 1), (5, 5, 3, 2, 1, False, True, 1), (5, 5, 3, 2, 1, False, False, 1),
    (6, 5, 3, 2, 1, True, True, 1), (7, 7, 2, 3, 1, True, False, 1), (6, 7, (3, 2), (2, 1), (1, 0), False, True, 1),
    (7, 7, 3, 1, 1, False, True, 2), (5, 6, 2, 2, 1, True, True, 1),
]


@pytest.mark.parametrize("case", CASES)
def test_against_pytorch(case):
    Hh, Ww, k, s, p, ceil, cip, d = case
    rng = random.Random(hash(case) % 1000)
    X = [[rng.randint(-3, 3) for _ in range(Ww)] for _ in range(Hh)]  # small integers: ties happen
    t = torch.tensor(X, dtype=torch.float64).reshape(1, 1, Hh, Ww)
    for order in ("F", "C"):
        if d == 1:
            A = avgpool_matrix((Hh, Ww), k, s, p, ceil, cip, order=order)
            want = torch.nn.functional.avg_pool2d(t, k, s, p, ceil, cip)[0, 0]
            got = unvec(A * vec(X, order), tuple(want.shape), order)
            assert [float(v) for v in got] == pytest.approx(want.flatten().tolist(), abs=1e-12)
        M = maxpool_matrix(X, k, s, p, d, ceil, order=order)
        want = torch.nn.functional.max_pool2d(t, k, s, p, d, ceil)[0, 0]
        assert unvec(M * vec(X, order), tuple(want.shape), order).tolist() == want.long().tolist()
        # the selection matrix is PyTorch's Jacobian, ties included (first maximum in the window)
        J = torch.autograd.functional.jacobian(lambda z: torch.nn.functional.max_pool2d(z, k, s, p, d, ceil), t)
        J = J.reshape(want.numel(), Hh * Ww)  # row-major on both sides
        if order == "C":
            assert M.tolist() == J.long().tolist()


def test_graph_nodes_and_channels():
    net = Net("pools")
    x = net.input(3, 6, 6)
    avgpool2d(x, 2, name="avg")
    maxpool2d(x, 3, 2, padding=1, name="max")
    g = net.graph
    assert for_node(g, "avg") == avgpool_matrix((6, 6), 2)
    X = [[(i * 7 + j * 3) % 5 for j in range(6)] for i in range(6)]
    assert for_node(g, "max", X) == maxpool_matrix(X, 3, 2, 1)
    with pytest.raises(ShapeError, match="max pooling is linear only at a given input"):
        for_node(g, "max")
    A = avgpool_matrix((2, 2), 2)
    assert per_channel(A, 3).shape == (3, 12)
    with pytest.raises(ShapeError, match="at most half the kernel"):
        avgpool_matrix((4, 4), 2, padding=2)
