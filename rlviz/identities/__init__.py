"""Identity checks, one module per chapter; each registers its rows with :func:`rlviz.verify.identity`."""
