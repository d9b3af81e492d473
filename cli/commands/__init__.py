"""One module per command family; cli/main.py adds each command to the `ctl` group.

apply.py     apply, create, replace (-f manifests; validate all, then write)
get.py       get (tables, -o yaml|json|name|wide, -l, -A, -w)
describe.py  describe (layout in cli/describe.py)
delete.py    delete (KIND NAME, -f, -l; --wait)
diff.py      diff -f (server dry run against the live object)
explain.py   explain KIND[.field.path] (from the schema, via cli/explain.py)
misc.py      version, api-resources
cluster.py   cluster up / cluster down (via cli/localcluster.py)
"""
