"""The PersonVLM network: encoders, visual tokens, attribute heads, caption decoder, checkpoints."""

from personvlm.models.config import ConfigError, ModelConfig
from personvlm.models.decoder import KVCache
from personvlm.models.personvlm import PersonVLM, parameter_report

__all__ = ["ConfigError", "KVCache", "ModelConfig", "PersonVLM", "parameter_report"]
