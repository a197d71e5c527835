"""The Numba kernels of squeeze-and-excitation blocks against NumPy: the per-sample channel
scale ``x · s`` (in place and not) and adaptive average/max pooling, by their row-range
kernels and their parallel drivers, with channel counts that are not multiples of 16 (the
last vector masked), batch 1 and 8, and several chunks or channel slices.
"""
import numpy as np
import pytest

from cnngraph.backends import numba_kernels as K
from cnngraph.backends import numba_par as PAR

CHANNELS = [1, 5, 16, 17, 32, 47, 64, 65, 96, 143, 1152]


def _windows(L, O):
    return [((i * L) // O, -((-(i + 1) * L) // O)) for i in range(O)]


def _adaptive_ref(x, Ho, Wo, is_max):
    """PyTorch's adaptive windows, in float64."""
    N, H, W, C = x.shape
    out = np.empty((N, Ho, Wo, C))
    for i, (h0, h1) in enumerate(_windows(H, Ho)):
        for j, (w0, w1) in enumerate(_windows(W, Wo)):
            win = x[:, h0:h1, w0:w1].astype(np.float64)
            out[:, i, j] = win.max(axis=(1, 2)) if is_max else win.mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("N", [1, 8])
@pytest.mark.parametrize("inplace", [False, True])
def test_mul_bcast_matches_numpy(C, N, inplace):
    rng = np.random.default_rng(C * 10 + N)
    H, W = 5, 3
    x = rng.standard_normal((N * H * W, C), dtype=np.float32)
    s = rng.standard_normal((N, C), dtype=np.float32)
    ref = x * np.repeat(s, H * W, axis=0)
    out = x if inplace else np.full_like(x, np.nan)
    for parts in (1, 2, 3):  # chunks that split samples in the middle
        y = x.copy() if inplace else x
        o = y if inplace else out
        PAR.mul_bcast(parts, y, s, o, N * H * W, H * W)
        np.testing.assert_array_equal(o, ref)


def test_mul_bcast_row_range_writes_only_its_rows():
    x = np.arange(7 * 3 * 20, dtype=np.float32).reshape(21, 20)
    s = np.full((3, 20), 2, np.float32)
    out = np.zeros_like(x)
    K.mul_bcast(x, s, out, 5, 16, 7)
    np.testing.assert_array_equal(out[5:16], 2 * x[5:16])
    assert not out[:5].any() and not out[16:].any()


@pytest.mark.parametrize("C", CHANNELS)
@pytest.mark.parametrize("N", [1, 8])
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (9, 5)])
def test_global_average_pool_matches_numpy(C, N, hw):
    rng = np.random.default_rng(C + N)
    x = rng.standard_normal((N,) + hw + (C,), dtype=np.float32)
    ref = _adaptive_ref(x, 1, 1, False)
    for parts, cs in ((1, 1), (2, 1), (2, 2), (3, 3), (4, 4)):
        out = np.full((N, 1, 1, C), np.nan, np.float32)
        PAR.adaptive_pool(min(parts, N * cs), x, out, N, False, cs)
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("C", [3, 17, 64, 65, 130])
@pytest.mark.parametrize("is_max", [False, True])
@pytest.mark.parametrize("out_hw", [(2, 3), (3, 3), (5, 4)])
def test_adaptive_pool_windows_match_numpy(C, is_max, out_hw):
    rng = np.random.default_rng(C)
    x = rng.standard_normal((3, 7, 10, C), dtype=np.float32)
    Ho, Wo = out_hw
    ref = _adaptive_ref(x, Ho, Wo, is_max)
    for parts, cs in ((1, 1), (2, 1), (2, 3)):
        out = np.full((3, Ho, Wo, C), np.nan, np.float32)
        PAR.adaptive_pool(parts, x, out, 3 * Ho, is_max, cs)
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=2e-6)


def test_channel_slices_cover_the_channels_in_vectors():
    for C in CHANNELS:
        for cs in (1, 2, 3, 5):
            cuts = [PAR.channel_cut(C, j, cs) for j in range(cs + 1)]
            assert cuts[0] == 0 and cuts[-1] == C
            assert all(a <= b for a, b in zip(cuts, cuts[1:]))
            assert all(c % 16 == 0 or c == C for c in cuts)  # whole vectors but the last


def test_window_mean_one_window_at_an_offset():
    """One window of channels 16:49 of sample 1, written at an offset of the output."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 50), dtype=np.float32)
    of = np.zeros(100, np.float32)
    acc = np.empty(50, np.float32)
    K.window_mean(x.reshape(-1), 4 * 6 * 50, 1, 3, 2, 5, 6, 50, 16, 49, np.float32(1 / 6), of, 40, acc)
    np.testing.assert_allclose(of[40:73], x[1, 1:3, 2:5, 16:49].mean(axis=(0, 1)), rtol=2e-6, atol=2e-6)
    assert not of[:40].any() and not of[73:].any()


def test_exp32_relative_error_over_its_range():
    """exp by the rounded-exponent trick and a degree-5 polynomial: a relative error within
    2e-7·max(1, |x|) of float64 in [-87, 88] (the polynomial's 1.7e-7, and the rounding of
    x·log2 e, which grows with |x|); clamped outside (finite, no NaN)."""
    from numba import njit

    @njit
    def exps(x, y):
        for i in range(x.shape[0]):
            y[i] = K.exp32(x[i])

    x = np.concatenate([np.linspace(-87, 88, 400_003), np.arange(-87, 89), [-0.5 / 1.4426950, 0.5 / 1.4426950]])
    x = x.astype(np.float32)
    y = np.empty_like(x)
    exps(x, y)
    ref = np.exp(x.astype(np.float64))
    assert np.all(np.abs(y / ref - 1) < 2e-7 * np.maximum(1, np.abs(x.astype(np.float64))))
    big = np.array([-1e4, -100, 100, 1e4, np.float32(np.inf), -np.float32(np.inf)], np.float32)
    yb = np.empty_like(big)
    exps(big, yb)
    assert np.all(np.isfinite(yb)) and np.all(yb > 0)


@pytest.mark.parametrize("code", [3, 5])  # sigmoid, SiLU (the registry's activation codes)
def test_sigmoid_and_silu_rows_match_float64(code):
    from cnngraph.ir.ops import act_code

    assert act_code("sigmoid") == 3 and act_code("silu") == 5
    rng = np.random.default_rng(code)
    t = np.concatenate([rng.standard_normal(1001) * 8, [-200, -88, -20, 0, 20, 88, 200]]).astype(np.float32)
    v = t.astype(np.float64)
    sig = 1 / (1 + np.exp(-v))
    ref = sig if code == 3 else v * sig
    K.act_row(t, code)
    # exp32's relative error (2e-7·max(1, |x|)) and a few roundings
    assert np.all(np.abs(t - ref) <= 2.5e-7 * np.maximum(1, np.abs(v)) * np.abs(ref) + 1e-30)
