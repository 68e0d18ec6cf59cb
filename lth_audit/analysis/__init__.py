"""Analyses of trained runs that need torch (loss landscapes); the audit side never imports this package."""
