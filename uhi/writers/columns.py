"""What the columns of uhi's tables mean: the ``columns`` sheet of every workbook reads this."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["COLUMN_NOTES", "describe_column"]

# Column names that recur across uhi's tables; a workbook's own notes win over these.
COLUMN_NOTES = {
    # keys and coordinates
    "cell": "cell key: quadkey of the web-mercator tile (the join key of every uhi output)",
    "lon": "longitude of the cell centre (EPSG:4326)",
    "lat": "latitude of the cell centre (EPSG:4326)",
    "year": "calendar year",
    "period": "period of the fit: a year, 'pooled' or 'all'",
    "date": "acquisition date (local solar day)",
    "scene_id": "STAC item id(s) of the date, '+'-joined when same-day scenes were merged",
    "kind": "observed or forecast",
    # cell variables
    "lst_c": "land surface temperature (USGS ST_B10)",
    "ndvi": "normalised difference vegetation index",
    "ndbi": "normalised difference built-up index",
    "mndwi": "modified normalised difference water index",
    "albedo": "broadband albedo",
    "anomaly_c": "LST minus the rural reference mean of the date",
    "valid_share": "share of the cell covered by clear pixels",
    "water_share": "share of the cell's clear pixels flagged water",
    "site_coverage": "building footprint area / cell area",
    "block_coverage": "building footprint area / street-block area",
    "far": "floor area ratio: floor area / cell area",
    "cells_with_lst": "cells with an LST value on the date",
    "urban_lst_c": "mean LST of the urban cells",
    "rural_lst_c": "mean LST of the rural reference cells",
    "suhi_c": "surface UHI intensity: urban minus rural mean LST",
    "n_urban": "urban cells with LST",
    "n_rural": "rural reference cells with LST",
    # regression
    "model": "regression model",
    "variable": "variable name",
    "coefficient": "estimated coefficient (per unit of the variable)",
    "std_error": "standard error of the estimate",
    "p_value": "two-sided p-value",
    "n": "observations used",
    "k": "estimated coefficients, intercept included",
    "r2": "R-squared (pseudo R-squared for spatial models)",
    "mean": "mean over the periods",
    "aic": "Akaike information criterion",
    "loglik": "log-likelihood",
    "sigma2": "residual variance",
    "rho": "spatial lag coefficient",
    "lambda": "spatial error coefficient",
    "direct": "direct effect (LeSage & Pace 2009)",
    "indirect": "indirect (spill-over) effect",
    "total": "total effect",
    "ssr": "sum of squared residuals",
    "dof": "residual degrees of freedom",
    "lm_lag": "LM test for a spatial lag (Anselin et al. 1996)",
    "lm_error": "LM test for spatial error dependence",
    "rlm_lag": "robust LM lag test",
    "rlm_error": "robust LM error test",
    "moran_i": "Moran's I of the residuals",
    "moran_mean": "expected Moran's I under no autocorrelation",
    "moran_var": "variance of Moran's I under no autocorrelation",
    "moran_z": "z-score of Moran's I",
    "r2_reduced_form": "R-squared of the reduced form (lag models)",
    "filtered_residual_var": "variance of the spatially filtered residuals (error model)",
    "zones": "zones (fixed effects) in the fit",
    "within_r2": "R-squared of the within (demeaned) fit",
    "r2_within": "R-squared of the within (demeaned) fit",
    "cells": "cells in the fit",
    "periods": "periods in the fit",
    "time_effects": "period fixed effects included",
    "balanced_units": "cells observed in every period",
    "units_dropped_unbalanced": "cells dropped for missing a period",
    "rows": "rows of the period",
    "used": "rows used (no missing value)",
    "dropped_nan": "rows dropped for a missing value",
    "hot 99%": "cells in Gi* hot spots at 99 %",
    "hot 95%": "cells in Gi* hot spots at 95 %",
    "hot 90%": "cells in Gi* hot spots at 90 %",
    "not significant": "cells in no hot or cold spot",
    "cold 90%": "cells in Gi* cold spots at 90 %",
    "cold 95%": "cells in Gi* cold spots at 95 %",
    "cold 99%": "cells in Gi* cold spots at 99 %",
    "method": "method used",
    "gi_z": "Getis-Ord Gi* z-score",
    "gi_p": "Gi* p-value (FDR-adjusted when model.fdr)",
    "hotspot": "Gi* class: 3 hot 99 % ... 0 not significant ... -3 cold 99 %",
    "hotspot_label": "Gi* class in words",
    "fitted": "fitted value of the best model",
    "residual": "observed minus fitted",
    "y": "observed value of the dependent variable",
    "share_changed": "share of the cell covered by change polygons",
    "moran_p": "two-sided p-value of Moran's I",
    # forecast validation and warming
    "holdout_steps": "last steps held out for validation",
    "series": "cell series of the variable",
    "too_few_points": "series with fewer observed steps than forecast.min_points (not fitted)",
    "no_data": "series without any value",
    "validated": "series validated on the hold-out steps",
    "rmse_mean": "mean hold-out RMSE over the validated series",
    "rmse_median": "median hold-out RMSE",
    "rmse_p90": "90th percentile of the hold-out RMSE",
    "method_simple": "series where simple exponential smoothing won",
    "method_holt": "series where Holt's linear trend won",
    "method_damped": "series where the damped trend won",
    "warming_added_c": "warming added between the last observed year and the target year",
    "warming_added_low_c": "warming added, low end of the table's range",
    "warming_added_high_c": "warming added, high end of the table's range",
    "city_lst_c": "city mean LST level plus the warming added",
}

# What a suffix adds to a variable's description (``lst_c_2021_lo``, ``ndvi_alpha``, ...).
_SUFFIX_NOTES = {
    "status": "forecast status (ok, too_few_points, no_data)",
    "steps_observed": "steps with an observed value",
    "observations": "scenes behind the observed steps",
    "method": "smoothing method chosen by AICc",
    "alpha": "level smoothing parameter",
    "beta": "trend smoothing parameter",
    "phi": "trend damping parameter",
    "aicc": "corrected AIC of the chosen method",
    "rmse": "hold-out RMSE",
    "level": "last smoothed level",
    "lo": "lower bound of the prediction interval",
    "hi": "upper bound of the prediction interval",
    "scenes": "scenes behind the value",
    "model": "projection by the fitted regression model",
    "rcp85": "current level plus RCP8.5 warming",
    "mean": "mean",
    "std": "standard deviation",
    "min": "minimum",
    "max": "maximum",
    "before": "before the changes",
    "after": "after the changes",
    "summer": "mean over the latest year's dates",
    "p": "p-value",
    "label": "label",
}
_PERIOD = re.compile(r"\d{4}(-\d{2})?")


def describe_column(name: str, notes: Mapping[str, str] | None = None) -> str:
    """A column's description: by name, else ``<variable>: <what the suffixes add>``; '' if unknown."""
    known = {**COLUMN_NOTES, **dict(notes or {})}
    if name in known:
        return known[name]
    if _PERIOD.fullmatch(name):
        return f"value for {name}"
    bases = sorted((b for b in known if name.startswith(b + "_")), key=len, reverse=True)
    for base in bases:
        parts = name[len(base) + 1 :].split("_")
        words = []
        i = 0
        while i < len(parts):
            two = "_".join(parts[i : i + 2])
            if two in _SUFFIX_NOTES:
                words.append(_SUFFIX_NOTES[two])
                i += 2
            elif parts[i] in _SUFFIX_NOTES:
                words.append(_SUFFIX_NOTES[parts[i]])
                i += 1
            elif _PERIOD.fullmatch(parts[i]):
                words.append(f"for {parts[i]}")
                i += 1
            else:
                break
        else:
            return f"{known[base]}: {', '.join(words)}"
    return ""
