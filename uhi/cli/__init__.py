"""The uhi command line: a click group and one module per command; no science here."""
