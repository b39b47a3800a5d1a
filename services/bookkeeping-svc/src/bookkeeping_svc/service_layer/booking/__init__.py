"""The booking steps, one use case each, run by service_layer/scheduler.py for one tenant at a
time: post (look up, then post the MEMOs), match, reverse, update customers. Each takes the
tenant's ``Access`` and returns it (possibly refreshed) with whether it found work."""
