"""The operator dashboard (FastAPI + Jinja2 + htmx); ``qcflow dashboard`` runs it, nothing imports it."""
