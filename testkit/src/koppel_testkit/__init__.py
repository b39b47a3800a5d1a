"""The test kit: the whole system started as ``koppel run`` starts it (``launch``), the load an ERP,
a debtor and a bank put on it (``workload``), the chaos drill (``chaos``) and the Dockerfile reader
of the deploy tests (``dockerfiles``). Used by tests/, bench/ and ``make chaos``; no service image
and not the ``koppel`` command ship it."""
