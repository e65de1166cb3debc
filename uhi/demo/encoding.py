"""The demo's own copy of the Landsat C2 L2 DN encoding (deliberately not imported from uhi.landsat).

The demo writes DNs with these numbers and uhi decodes them with ``uhi.landsat``'s: a wrong
constant on either side shows up in the end-to-end tests as a wrong temperature or reflectance
instead of cancelling out. Source: USGS, Landsat 8-9 Collection 2 Level-2 Science Product Guide
(LSDS-1619, v4.0, 2022), Table 6-1 (surface reflectance: scale 0.0000275, offset -0.2, fill 0,
valid DN 7273-43636) and Table 6-2 (ST_B10: scale 0.00341802, offset 149.0 K, fill 0; ST_QA:
scale 0.01 K, fill -9999), the same numbers as the MTL's LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
and LEVEL2_SURFACE_TEMPERATURE_PARAMETERS groups of every C2 L2 product.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SR_MULT",
    "SR_ADD",
    "SR_FILL",
    "ST_MULT",
    "ST_ADD_K",
    "ST_FILL",
    "ST_QA_MULT_K",
    "ST_QA_FILL",
    "CELSIUS_ZERO_K",
    "sr_dn",
    "st_dn",
    "st_qa_dn",
]

SR_MULT = 0.0000275  # reflectance per DN
SR_ADD = -0.2  # reflectance at DN 0
SR_FILL = 0
ST_MULT = 0.00341802  # kelvin per DN
ST_ADD_K = 149.0  # kelvin at DN 0
ST_FILL = 0
ST_QA_MULT_K = 0.01  # ST uncertainty, kelvin per DN (int16)
ST_QA_FILL = -9999
CELSIUS_ZERO_K = 273.15  # 0 degC in kelvin, by definition


def sr_dn(rho: np.ndarray) -> np.ndarray:
    """Surface reflectance to uint16 DN (rounded; DN 1 is the lowest non-fill value)."""
    dn = np.round((np.asarray(rho, dtype=np.float64) - SR_ADD) / SR_MULT)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def st_dn(lst_c: np.ndarray) -> np.ndarray:
    """Surface temperature in degC to ST_B10 uint16 DN (rounded)."""
    kelvin = np.asarray(lst_c, dtype=np.float64) + CELSIUS_ZERO_K
    dn = np.round((kelvin - ST_ADD_K) / ST_MULT)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def st_qa_dn(uncertainty_k: np.ndarray) -> np.ndarray:
    """ST uncertainty in kelvin to ST_QA int16 DN (rounded)."""
    return np.round(np.asarray(uncertainty_k, dtype=np.float64) / ST_QA_MULT_K).astype(np.int16)
