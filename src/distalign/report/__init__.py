"""Reports: the paper's tables and figures for any results, paired comparisons, and one
self-contained HTML file (``distalign report`` / ``distalign compare``)."""

from distalign.report.html import Report, build_report
from distalign.report.tables import (
    Comparison,
    ReportTable,
    Selector,
    build_tables,
    compare,
    load_items,
    parse_selector,
    select_configuration,
    write_tables,
)

__all__ = [
    "Comparison",
    "Report",
    "ReportTable",
    "Selector",
    "build_report",
    "build_tables",
    "compare",
    "load_items",
    "parse_selector",
    "select_configuration",
    "write_tables",
]
