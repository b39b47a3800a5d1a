from bookkeeping_svc.adapters.orm import TARGET_METADATA
from bookkeeping_svc.settings import Settings
from koppel_shared.migrations import run_env

run_env(TARGET_METADATA, lambda: Settings().database_url)
