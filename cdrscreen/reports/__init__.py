"""Per-patient and study reports: self-contained HTML built from a run folder.

>>> from cdrscreen.reports import build_reports
>>> paths = build_reports("runs/cdr_binary")  # doctest: +SKIP
"""

from cdrscreen.reports.api import SYNTHETIC_BANNER, build_reports
from cdrscreen.reports.builder import RESEARCH_CAUTION, Report
from cdrscreen.reports.cohort import summarize_cohort
from cdrscreen.reports.patient import build_patient_report
from cdrscreen.reports.rundata import RunData, load_run
from cdrscreen.reports.study_report import build_study_report

__all__ = [
    "RESEARCH_CAUTION",
    "SYNTHETIC_BANNER",
    "Report",
    "RunData",
    "build_patient_report",
    "build_reports",
    "build_study_report",
    "load_run",
    "summarize_cohort",
]
