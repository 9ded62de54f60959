"""Accuracy reports on frozen test suites: suites, metrics with confidence intervals, plots, a gate.

Modules: ``suites`` (building and storing suites), ``scoring`` (running a model over a suite),
``stats`` (intervals and significance tests), ``metrics`` (what a report measures), ``plots`` and
``html`` (the self-contained page), ``gate`` (bounds a report must meet), ``history`` (reports in
the database), ``build`` (putting it together) and ``cli`` (``qcflow suite`` and ``qcflow report``).
"""
