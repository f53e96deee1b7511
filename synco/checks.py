"""Configuration checks every layer may raise: ``ConfigError`` and the one-line field checks methods' validators use.

The lowest layer (it imports nothing of the library), so that a method's validator checks its fields without
importing the configuration module that composes all methods (which imports the methods).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and what is allowed."""


def choice(cfg: DictConfig, key: str, allowed) -> None:
    """``key`` is one of ``allowed``."""
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}")


def at_least(cfg: DictConfig, key: str, low, optional: bool = False) -> None:
    """``key`` >= ``low`` (None passes when ``optional``)."""
    value = OmegaConf.select(cfg, key)
    if value is None and optional:
        return
    if value is None or value < low:
        raise ConfigError(f"{key}={value!r} must be at least {low}")


def positive(cfg: DictConfig, key: str) -> None:
    """``key`` > 0."""
    value = OmegaConf.select(cfg, key)
    if value is None or value <= 0:
        raise ConfigError(f"{key}={value!r} must be positive")
