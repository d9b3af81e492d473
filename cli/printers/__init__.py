"""Output formats of `ctl get`: a table (default and `-o wide`), yaml, json and name.

`tabwriter.py` aligns columns like Go's text/tabwriter, `table.py` builds
kubectl's tables from the per-kind columns in api/printing/columns.py, and
`structured.py` prints objects as YAML, JSON or `kind/name`, `jsonpath.py`
picks fields for `-o jsonpath=...` and `-o custom-columns=...`, and
`formats.py` parses `-o` and prints a batch of objects in the chosen format.
"""

from cli.printers.structured import as_list, print_object, to_json, to_name, to_yaml
from cli.printers.table import Table

__all__ = ["Table", "as_list", "print_object", "to_json", "to_name", "to_yaml"]
