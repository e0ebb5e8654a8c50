"""Plans: every change to a host is a list of typed steps that can render and undo themselves.

`steps` (the step types), `executor` (runs plans with an intent log and undo), `runner` (the
command boundary). Nothing is re-exported here, so importing one does not import the others.
"""
