"""Soft-DTW value and its gradient (Algorithms 1 and 2 of Cuturi & Blondel, ICML 2017),
transcribed from the authors' code to pure numpy float64.

Source
------
Repository: https://github.com/mblondel/soft-dtw
Files:      sdtw/soft_dtw_fast.pyx (commit 62483d0388ffc9ee543b77e6899a066038d0e84c):
            ``_softmin3``, ``_soft_dtw`` (forward DP), ``_soft_dtw_grad`` (backward DP, the
            matrix E = dR_{m,n}/dD), ``_jacobian_product_sq_euc`` (E -> gradient w.r.t. X);
            sdtw/soft_dtw.py (commit f66c57a15818ec6fde67237e5998add468ab9531): ``SoftDTW``
            (the (m+2, n+2) R and E buffers, the padding of D by a zero row and column);
            sdtw/distance.py (commit 62483d0388ffc9ee543b77e6899a066038d0e84c):
            ``SquaredEuclidean`` (D = squared euclidean distances).

Deviations: plain Python loops instead of Cython; no Sakoe-Chiba band (the default, band = -1).
The gradient w.r.t. Y is the same Jacobian product with the roles of X and Y swapped and the
sign flipped (dD_ij/dY_j = -2 (X_i - Y_j)); upstream returns the X gradient only. Boundaries are
upstream's DBL_MAX (finite), not inf.
"""

from __future__ import annotations

import numpy as np

DBL_MAX = np.finfo(np.float64).max


def _softmin3(a, b, c, gamma):
    with np.errstate(over="ignore"):  # DBL_MAX / gamma < 1 is inf in C as in numpy
        a, b, c = a / -gamma, b / -gamma, c / -gamma
    max_val = max(max(a, b), c)
    tmp = np.exp(a - max_val) + np.exp(b - max_val) + np.exp(c - max_val)
    return -gamma * (np.log(tmp) + max_val)


def sq_euclidean(X, Y):
    """D[i, j] = |X_i - Y_j|^2 (sklearn's euclidean_distances(squared=True) in upstream)."""
    return ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)


def soft_dtw_R(D, gamma):
    """The (m+2, n+2) accumulated-cost matrix R of _soft_dtw; R[m, n] is soft-DTW."""
    m, n = D.shape
    R = np.zeros((m + 2, n + 2))
    R[:, 0] = DBL_MAX
    R[0, :] = DBL_MAX
    R[0, 0] = 0.0
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            R[i, j] = D[i - 1, j - 1] + _softmin3(R[i - 1, j], R[i - 1, j - 1], R[i, j - 1], gamma)
    return R


def soft_dtw_grad_D(D, R, gamma):
    """_soft_dtw_grad: E[1:-1, 1:-1] = d R[m, n] / d D (SoftDTW.grad), R modified as upstream."""
    m0, n0 = D.shape
    D = np.vstack((D, np.zeros(n0)))
    D = np.hstack((D, np.zeros((m0 + 1, 1))))
    R = R.copy()
    m, n = D.shape[0] - 1, D.shape[1] - 1
    E = np.zeros((m + 2, n + 2))
    for i in range(1, m + 1):
        D[i - 1, n] = 0
        R[i, n + 1] = -DBL_MAX
    for j in range(1, n + 1):
        D[m, j - 1] = 0
        R[m + 1, j] = -DBL_MAX
    E[m + 1, n + 1] = 1
    R[m + 1, n + 1] = R[m, n]
    D[m, n] = 0
    for j in reversed(range(1, n + 1)):
        for i in reversed(range(1, m + 1)):
            a = 0.0 if E[i + 1, j] == 0 else np.exp((R[i + 1, j] - R[i, j] - D[i, j - 1]) / gamma)
            b = 0.0 if E[i, j + 1] == 0 else np.exp((R[i, j + 1] - R[i, j] - D[i - 1, j]) / gamma)
            c = (
                0.0
                if E[i + 1, j + 1] == 0
                else np.exp((R[i + 1, j + 1] - R[i, j] - D[i, j]) / gamma)
            )
            E[i, j] = E[i + 1, j] * a + E[i, j + 1] * b + E[i + 1, j + 1] * c
    return E[1:-1, 1:-1]


def _jacobian_product_sq_euc(X, Y, E):
    G = np.zeros_like(X)
    for i in range(X.shape[0]):
        for j in range(Y.shape[0]):
            if E[i, j] == 0:
                continue
            G[i] += E[i, j] * 2 * (X[i] - Y[j])
    return G


def soft_dtw(X, Y, gamma=1.0):
    """(value, dvalue/dX, dvalue/dY) for one pair of series X [m, d], Y [n, d]."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    D = sq_euclidean(X, Y)
    R = soft_dtw_R(D, gamma)
    E = soft_dtw_grad_D(D, R, gamma)
    return (
        R[D.shape[0], D.shape[1]],
        _jacobian_product_sq_euc(X, Y, E),
        _jacobian_product_sq_euc(Y, X, E.T),
    )


def soft_dtw_batch(X, Y, gamma=1.0):
    """Per pair over a batch X [B, m, d], Y [B, n, d]: values [B], gradients of their sum."""
    out = [soft_dtw(x, y, gamma) for x, y in zip(X, Y)]
    return (
        np.array([o[0] for o in out]),
        np.stack([o[1] for o in out]),
        np.stack([o[2] for o in out]),
    )


def soft_dtw_divergence_batch(X, Y, gamma=1.0):
    """Blondel, Mensch, Vert 2021 (eq. 4): sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2, per pair,
    with gradients of the sum (the x-x and y-y terms' gradients: both arguments are x, resp. y)."""
    v, gx, gy = soft_dtw_batch(X, Y, gamma)
    vx, gx1, gx2 = soft_dtw_batch(X, X, gamma)
    vy, gy1, gy2 = soft_dtw_batch(Y, Y, gamma)
    return v - (vx + vy) / 2, gx - (gx1 + gx2) / 2, gy - (gy1 + gy2) / 2
