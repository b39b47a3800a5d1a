from koppel_shared.migrations import run_env
from mandate_svc.adapters.orm import TARGET_METADATA
from mandate_svc.settings import Settings

run_env(TARGET_METADATA, lambda: Settings().database_url)
