"""Reports: the study report (HTML, PDF) with the TRIPOD+AI checklist; later the patient report."""
