"""Reports of audit results: JSON (`lth-audit.report/1`), a terminal table and the HTML report. Nothing here decides."""
