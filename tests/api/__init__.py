"""The Python API for users ' own training code: RecordWriter and lth_audit.pytorch."""
