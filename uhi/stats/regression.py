"""Least-squares models: OLS, SLX (adds W X) and zone fixed effects, with a common result type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from uhi.errors import InputError

__all__ = ["ModelFit", "check_design", "fit_ols", "fit_slx", "fit_fe", "gaussian_loglik"]

_LN2PI = float(np.log(2.0 * np.pi))


@dataclass
class ModelFit:
    """One fitted model: estimates, fit statistics and per-observation values.

    Attributes
    ----------
    model
        ``ols``, ``slx``, ``lag``, ``error``, ``fe`` or ``panel_fe``.
    names
        Coefficient names, ``const`` first when there is an intercept.
    coefficients, std_errors, p_values
        Arrays aligned with ``names`` (rho / lambda are kept apart).
    n
        Observations used.
    k
        Estimated coefficients counted by the AIC (rho/lambda and fixed effects included).
    r2
        R-squared (OLS family) or pseudo R-squared, the squared correlation of y and fitted.
    loglik, aic
        Gaussian log-likelihood and -2 loglik + 2 k.
    sigma2
        Residual variance estimate.
    fitted, residuals
        Per observation (for the lag model fitted = rho W y + X b; error model fitted = X b).
    rho, lam
        Spatial lag / error parameter with standard error and p-value, when estimated.
    diagnostics
        Model-specific extras (LM tests, residual Moran's I, method, zone count, ...).
    impacts
        name -> {direct, indirect, total} for lag models.
    """

    model: str
    names: list[str]
    coefficients: np.ndarray
    std_errors: np.ndarray
    p_values: np.ndarray
    n: int
    k: int
    r2: float
    loglik: float
    aic: float
    sigma2: float
    fitted: np.ndarray
    residuals: np.ndarray
    rho: float | None = None
    rho_se: float | None = None
    rho_p: float | None = None
    lam: float | None = None
    lam_se: float | None = None
    lam_p: float | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    impacts: dict[str, dict[str, float]] | None = None

    def coefficient_dict(self) -> dict[str, float]:
        """Coefficients by name."""
        return {n: float(v) for n, v in zip(self.names, self.coefficients, strict=True)}

    def to_summary(self) -> dict[str, Any]:
        """The machine-readable record written to summary.json (no per-observation arrays)."""
        out: dict[str, Any] = {
            "coefficients": self.coefficient_dict(),
            "std_errors": {n: float(v) for n, v in zip(self.names, self.std_errors, strict=True)},
            "p_values": {n: float(v) for n, v in zip(self.names, self.p_values, strict=True)},
            "r2": float(self.r2),
            "aic": float(self.aic),
            "loglik": float(self.loglik),
            "sigma2": float(self.sigma2),
            "n": int(self.n),
            "k": int(self.k),
        }
        if self.rho is not None:
            out.update(rho=self.rho, rho_se=self.rho_se, rho_p=self.rho_p)
        if self.lam is not None:
            out.update({"lambda": self.lam, "lambda_se": self.lam_se, "lambda_p": self.lam_p})
        if self.impacts is not None:
            out["impacts"] = self.impacts
        out["diagnostics"] = {k: v for k, v in self.diagnostics.items() if _jsonable(v)}
        return out


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool, dict, list))


def gaussian_loglik(ssr: float, n: int) -> float:
    """Concentrated Gaussian log-likelihood with sigma2 = SSR / n."""
    return float(-0.5 * n * (_LN2PI + 1.0 + np.log(ssr / n)))


def check_design(x: np.ndarray, names: Sequence[str]) -> None:
    """Refuse a design matrix that is too short or rank-deficient, naming the culprits.

    Raises
    ------
    InputError
        Fewer rows than columns + 1, or columns that are linear combinations of others.
    """
    from scipy.linalg import qr

    n, k = x.shape
    if n <= k:
        raise InputError(
            f"too few observations for the model: {n} rows for {k} coefficients; "
            "give more rows or fewer x variables"
        )
    scale = np.sqrt((x * x).sum(axis=0))
    if np.any(scale == 0):
        bad = [names[int(i)] for i in np.flatnonzero(scale == 0)]
        raise InputError(f"collinear x: column(s) {bad} are all zero; drop them")
    # LAPACK works on a Fortran-ordered copy: dividing straight into one spares scipy a second
    # copy and the unused Q (the same R and pivots; ~40 % of the check at 384k rows)
    scaled = np.empty(x.shape, order="F")
    np.divide(x, scale, out=scaled)
    _, r, piv = qr(scaled, mode="raw", pivoting=True, overwrite_a=True)
    diag = np.abs(np.diag(r))
    tol = diag[0] * max(n, k) * 1e-10
    rank = int((diag > tol).sum())
    if rank < k:
        bad = [names[int(i)] for i in piv[rank:]]
        raise InputError(
            f"collinear x: {bad} is a linear combination of the other columns "
            f"(rank {rank} < {k}); drop one of them"
        )


def _ols_core(y: np.ndarray, x: np.ndarray, dof_extra: int = 0) -> dict[str, Any]:
    """Least squares with classical errors; dof_extra counts absorbed fixed effects."""
    xtx = x.T @ x
    xtxi = np.linalg.inv(xtx)
    b = xtxi @ (x.T @ y)
    e = y - x @ b
    n, k = x.shape
    ssr = float(e @ e)
    dof = n - k - dof_extra
    if dof <= 0:
        raise InputError(f"no residual degrees of freedom: {n} rows for {k + dof_extra} parameters")
    s2 = ssr / dof
    se = np.sqrt(np.diag(xtxi) * s2)
    t = b / se
    p = 2.0 * stats.t.sf(np.abs(t), dof)
    return {"b": b, "e": e, "ssr": ssr, "s2": s2, "se": se, "p": p, "xtxi": xtxi, "dof": dof}


def _r2(y: np.ndarray, ssr: float) -> float:
    d = y - y.mean()
    sst = float(d @ d)
    return 1.0 - ssr / sst if sst > 0 else float("nan")


def _with_const(x: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    return np.column_stack([np.ones(x.shape[0]), x]), ["const", *names]


def fit_ols(
    y: np.ndarray, x: np.ndarray, names: Sequence[str], *, model: str = "ols", design_checked: bool = False
) -> ModelFit:
    """Ordinary least squares with an intercept (matches statsmodels OLS and spreg.OLS).

    Parameters
    ----------
    y
        (n,) response.
    x
        (n, k) regressors without the constant.
    names
        Names of the k regressors.
    design_checked
        The caller has run :func:`check_design` on ``[1, x]`` already (a stage fitting several
        models on one design checks it once: ~0.06 s per check at 384k rows).
    """
    y = np.asarray(y, dtype=float)
    xc, cnames = _with_const(np.asarray(x, dtype=float), names)
    if not design_checked:
        check_design(xc, cnames)
    r = _ols_core(y, xc)
    n, k = xc.shape
    ll = gaussian_loglik(r["ssr"], n)
    return ModelFit(
        model=model,
        names=cnames,
        coefficients=r["b"],
        std_errors=r["se"],
        p_values=r["p"],
        n=n,
        k=k,
        r2=_r2(y, r["ssr"]),
        loglik=ll,
        aic=-2.0 * ll + 2.0 * k,
        sigma2=r["s2"],
        fitted=y - r["e"],
        residuals=r["e"],
        diagnostics={"ssr": r["ssr"], "dof": r["dof"]},
    )


def fit_slx(y: np.ndarray, x: np.ndarray, names: Sequence[str], w: sp.csr_matrix) -> ModelFit:
    """SLX: OLS on [X, W X] (Halleck Vega & Elhorst 2015), W row-standardised."""
    x = np.asarray(x, dtype=float)
    wx = np.asarray(w @ x)
    return fit_ols(y, np.column_stack([x, wx]), [*names, *(f"W_{n}" for n in names)], model="slx")


def fit_fe(
    y: np.ndarray, x: np.ndarray, names: Sequence[str], zones: np.ndarray
) -> ModelFit:
    """Zone fixed effects through the within transform (same slopes as OLS on zone dummies).

    R-squared, log-likelihood and AIC are those of the dummy-variable regression
    (statsmodels ``y ~ x + C(zone)``), so they compare with OLS on the same rows.
    """
    import pandas as pd

    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    codes, uniques = pd.factorize(pd.Series(zones), use_na_sentinel=True)
    if (codes < 0).any():
        raise InputError("the zone column has missing values; fill or drop those rows")
    g = len(uniques)
    if g < 2:
        raise InputError(f"fixed effects need at least two zones, got {g}; check the zone column")
    counts = np.bincount(codes, minlength=g).astype(float)

    def demean(a: np.ndarray) -> np.ndarray:
        if a.ndim == 1:
            return a - (np.bincount(codes, a, minlength=g) / counts)[codes]
        return np.column_stack([demean(a[:, j]) for j in range(a.shape[1])])

    yd, xd = demean(y), demean(x)
    flat = [names[j] for j in range(xd.shape[1]) if not np.any(np.abs(xd[:, j]) > 1e-12 * (1 + np.abs(x[:, j]).max()))]
    if flat:
        raise InputError(f"collinear x: {flat} is constant within every zone, so the zone effects absorb it; drop it from fe")
    check_design(xd, list(names))
    r = _ols_core(yd, xd, dof_extra=g)
    n, k = x.shape
    ll = gaussian_loglik(r["ssr"], n)
    return ModelFit(
        model="fe",
        names=list(names),
        coefficients=r["b"],
        std_errors=r["se"],
        p_values=r["p"],
        n=n,
        k=k + g,
        r2=_r2(y, r["ssr"]),
        loglik=ll,
        aic=-2.0 * ll + 2.0 * (k + g),
        sigma2=r["s2"],
        fitted=y - r["e"],
        residuals=r["e"],
        diagnostics={"zones": g, "ssr": r["ssr"], "dof": r["dof"], "within_r2": _r2(yd, r["ssr"])},
    )
