"""The web-mercator cell grid and coverage-weighted zonal statistics."""
