"""`python -m sync_svc api|worker|migrate`."""

from koppel_shared.service import main
from sync_svc.bootstrap import definition

if __name__ == "__main__":
    main(definition)
