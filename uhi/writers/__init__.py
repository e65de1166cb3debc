"""Writers for people: GeoJSON (RFC 7946), Excel workbooks, COG rasters; all atomic."""
