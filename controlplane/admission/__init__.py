"""Admission plugins about a namespace's resources: LimitRange (defaults, bounds) and ResourceQuota."""
