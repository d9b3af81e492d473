"""The wire contract: `skiff.proto` and its generated Python stubs (committed).

Regenerate with `python -m protos.generate`; tests/unit/test_protos_fresh.py fails
when the committed stubs no longer match the .proto source.
"""
