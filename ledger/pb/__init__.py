"""Code generated from ``proto/`` by ``python -m ledger.tools.protogen``. Never edit by hand."""
