"""The study report of ``hepablate train``: one self-contained HTML page, and the same as PDF.

Everything comes from the run folder: ``metrics.json`` (``hepablate.study.results.summarise``),
``selected_features.csv``, ``predictions.csv`` and, when present, ``table1.csv`` and
``missingness.csv`` (``write_cohort_tables``). So a report can be rebuilt from a finished run.
The page is rendered from ``templates/study.html.j2``; its CSS is inline and every figure is a
matplotlib PNG embedded as a data URI: the page loads nothing from the network. The PDF is the
same HTML rendered by WeasyPrint (A4).

The entry points live here; the parts are ``tables`` (table 1, missingness), ``formatting``
(estimates, p-values, the page's filters), ``figures``, ``sections`` (tables and sentences)
and ``context`` (the template's context from a run folder).
"""

from __future__ import annotations

from pathlib import Path

from hepablate.report.context import report_context
from hepablate.report.figures import BAR, COLOURS
from hepablate.report.formatting import breakable_name, estimate_cell, format_estimate
from hepablate.report.tables import missingness_table, table_one, write_cohort_tables

__all__ = [
    "BAR",
    "COLOURS",
    "format_estimate",
    "missingness_table",
    "render_report",
    "table_one",
    "write_cohort_tables",
    "write_report",
]

TEMPLATES = Path(__file__).with_name("templates")


def render_report(run_dir: Path) -> str:
    """The report's HTML, from the files of a run folder."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["estimate"] = estimate_cell
    environment.filters["breakable"] = breakable_name
    template = environment.get_template("study.html.j2")
    return template.render(**report_context(run_dir))


def write_report(run_dir: Path) -> dict[str, Path]:
    """``report.html`` and ``report.pdf`` (A4, WeasyPrint) in ``run_dir``, from its files."""
    import logging

    from weasyprint import HTML  # type: ignore[import-untyped]

    page = render_report(run_dir)
    paths = {"report_html": run_dir / "report.html", "report_pdf": run_dir / "report.pdf"}
    paths["report_html"].write_text(page, encoding="utf-8")
    for name in ("weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    HTML(string=page, base_url=str(run_dir)).write_pdf(paths["report_pdf"])
    return paths
