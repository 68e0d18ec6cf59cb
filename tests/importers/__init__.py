"""Importers of other tools' output trees (OpenLTH)."""
