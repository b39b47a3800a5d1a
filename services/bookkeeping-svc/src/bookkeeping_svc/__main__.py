"""`python -m bookkeeping_svc api|worker|migrate`."""

from bookkeeping_svc.bootstrap import definition
from koppel_shared.service import main

if __name__ == "__main__":
    main(definition)
