"""The self-contained HTML report: maps, model comparison, SUHI series, forecasts, cell map."""
