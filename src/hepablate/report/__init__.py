"""Reports: the study report of ``hepablate train`` (one HTML page and its PDF, rebuilt from a
run folder) with the TRIPOD+AI checklist.

``study`` holds the entry points (``write_report``, ``render_report``, ``write_cohort_tables``);
``tables``, ``formatting``, ``figures``, ``sections`` and ``context`` are its parts; ``tripod``
fills the checklist.
"""
