"""The test kit: the whole system started as ``koppel run`` starts it (``launch``), the load an ERP,
a debtor and a bank put on it (``workload``) and the chaos drill (``chaos``). Used by tests/,
bench/ and ``make chaos``; no service image and not the ``koppel`` command ship it."""
