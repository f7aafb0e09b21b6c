"""The report of a profiling run: report.json, report.md and the plots."""
