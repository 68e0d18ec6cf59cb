"""lth-audit: make the rigorous winning-ticket definition of Ma et al. (2021) executable."""

__version__ = "0.1.0"
