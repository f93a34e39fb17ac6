"""Use cases: what the functions call. No HTTP here; persistence through ``paycore.dal``."""
