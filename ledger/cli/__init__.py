"""Console scripts: ledger-standalone, ledger-dev (and ledger-node, ledger-gateway)."""
