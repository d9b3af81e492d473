"""How objects are shown in tables, shared by `ctl get` (cli/printers) and the REST API's Table
responses to kubectl (controlplane/rest/table.py), so both print the same columns:

  timefmt.py     AGE formatting (`5s`, `3m`, `2d4h`), timestamps
  podstatus.py   how kubectl computes a pod's READY, STATUS and RESTARTS
  columns.py     per-kind table columns (`get` default and `-o wide`)
"""
