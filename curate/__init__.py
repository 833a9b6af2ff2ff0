"""curate: a Ray-parallel data-quality pipeline for instruction-tuning data."""

__version__ = "0.1.0"
