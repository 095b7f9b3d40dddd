"""The quality program: sampling finished calls for review, scorecards, evaluations."""
