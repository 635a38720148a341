"""From a loaded ServerConfig to what the core and the shell need for secure connections.

`core_kwargs` gives the CoreSettings fields (providers, super users, SASL users, enforcement);
`tls_server` builds the secure port's TlsServer. Both raise ConfigError with the reason, so a
configuration Apache would refuse (a JAAS file that does not parse, an
enforced scheme without a provider) stops start-up instead of failing clients later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, ServerConfig
from . import DIGEST_PROVIDER, IP_PROVIDER, SASL_PROVIDER, X509_PROVIDER
from .sasl import SaslConfigError, SaslSettings

if TYPE_CHECKING:
    from .tls import TlsServer

log = logging.getLogger("zkserver.security")


def provider_schemes(cfg: ServerConfig) -> set[str]:
    """The schemes ProviderRegistry would hold: ip, digest, plus the authProvider.N classes we serve."""
    schemes = {"ip"}
    if cfg.digest_auth_enabled:
        schemes.add("digest")
    for cls in cfg.auth_providers.values():
        cls = cls.strip()
        if cls == X509_PROVIDER:
            schemes.add("x509")
        elif cls == SASL_PROVIDER:
            schemes.add("sasl")
        elif cls not in (DIGEST_PROVIDER, IP_PROVIDER):
            log.warning("authentication provider %s is Java code; its scheme is not served", cls)
    return schemes


def core_kwargs(cfg: ServerConfig) -> dict[str, Any]:
    props = cfg.properties
    schemes = provider_schemes(cfg)
    try:
        sasl = SaslSettings.from_properties(props)
    except SaslConfigError as e:
        raise ConfigError(cfg.source_path, None, str(e)) from None
    enforced: tuple[str, ...] = ()
    if cfg.enforce_auth_enabled:
        enforced = tuple(s for s in cfg.enforce_auth_schemes if s)
        for scheme in enforced:
            if scheme not in schemes:
                raise ConfigError(cfg.source_path, None, f"Authentication scheme {scheme} is not available.")
    return {
        "x509_enabled": "x509" in schemes,
        "x509_super_user": props.get("zookeeper.X509AuthenticationProvider.superUser"),
        "sasl_enabled": "sasl" in schemes,
        "sasl_any_user": props.get("zookeeper.letAnySaslUserDoX"),
        "sasl": sasl,
        "enforce_auth_schemes": enforced,
    }


def tls_server(cfg: ServerConfig) -> TlsServer | None:
    if cfg.secure_client_port is None:
        return None
    try:
        from .tls import TlsConfigError, TlsServer, TlsSettings
    except ImportError as e:  # cryptography is the optional extra zkserver[tls]
        raise ConfigError(cfg.source_path, None, f"secureClientPort needs the tls extra"
                                                 f" (pip install 'zkserver[tls]'): {e}") from None
    try:
        settings = TlsSettings.from_config(cfg.ssl, cfg.properties)
        for warning in settings.warnings:
            log.warning("%s", warning)
        return TlsServer(settings)
    except TlsConfigError as e:
        raise ConfigError(cfg.source_path, None, f"secureClientPort: {e}") from None
