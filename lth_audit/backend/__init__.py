"""Training and pruning engine that produces run records. Imports torch; the audit side never imports this."""
