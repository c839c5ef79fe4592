"""Chat-model backends, each a langchain-core BaseChatModel, resolved through a provider registry."""

from .registry import Provider, create_model, get_provider, provider_names, register_provider

__all__ = ["Provider", "create_model", "get_provider", "provider_names", "register_provider"]
