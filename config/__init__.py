"""Settings for every Newsflash process (config.settings is the only reader of os.environ)."""

from config.settings import Settings, SettingsError, Topic, load_settings

__all__ = ["Settings", "SettingsError", "Topic", "load_settings"]
