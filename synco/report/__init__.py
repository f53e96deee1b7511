"""``synco report``: tables (tables.py) and figures (figures.py) read from run directories' files."""

from synco.report.tables import Run, difference_table, final_table, write_report

__all__ = ["Run", "difference_table", "final_table", "write_report"]
