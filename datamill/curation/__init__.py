"""Curation: datasets of samples, their import and export (`DatasetService`)."""
