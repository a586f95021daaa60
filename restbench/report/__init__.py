"""Reporting: summary tables of a run (and, later, leaderboards and plots)."""
