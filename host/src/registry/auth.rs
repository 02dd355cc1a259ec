//! How sluice talks to a registry: plain HTTP only for loopback and listed registries,
//! credentials from the environment or `docker login`, and the TLS provider.

use oci_client::secrets::RegistryAuth;

/// Plain HTTP is used only for loopback registries and those listed in
/// `SLUICE_INSECURE_REGISTRIES` (comma-separated host:port); everything else speaks HTTPS.
pub(crate) fn uses_plain_http(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(registry, |(host, _)| host);
    // Loopback is an address in 127.0.0.0/8, ::1 or exactly `localhost` — not a name that
    // merely starts with "127." (`127.attacker.example` resolves wherever its owner likes).
    let loopback = matches!(host, "localhost" | "[::1]")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback
        || std::env::var("SLUICE_INSECURE_REGISTRIES").is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|entry| entry == registry)
        })
}

/// Credentials for a registry: `SLUICE_REGISTRY_USER` + `SLUICE_REGISTRY_PASSWORD` when both
/// are set and `SLUICE_REGISTRY_HOST` names exactly this registry (`host[:port]`); else what
/// `docker login` stored for that host (`$DOCKER_CONFIG` or `~/.docker/config.json`, credential
/// helpers included; identity tokens are not supported); else anonymous. A pipeline can name any
/// `oci://` host, so credentials never go to a host they were not configured for.
pub fn credentials(registry: &str) -> RegistryAuth {
    if let (Ok(user), Ok(password), Ok(host)) = (
        std::env::var("SLUICE_REGISTRY_USER"),
        std::env::var("SLUICE_REGISTRY_PASSWORD"),
        std::env::var("SLUICE_REGISTRY_HOST"),
    ) && host.trim().eq_ignore_ascii_case(registry)
    {
        return RegistryAuth::Basic(user, password);
    }
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        // Identity tokens (OAuth refresh tokens) and lookup failures: try anonymously; a
        // registry that wants more says so, and the error names both ways to log in.
        Ok(docker_credential::DockerCredential::IdentityToken(_)) | Err(_) => {
            RegistryAuth::Anonymous
        }
    }
}

/// Installs the TLS crypto provider once (rustls with ring, which the wasi-http client uses too).
pub(crate) fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_use_plain_http() {
        assert!(uses_plain_http("127.0.0.1:5000"));
        assert!(uses_plain_http("localhost:5000"));
        assert!(!uses_plain_http("ghcr.io"));
        assert!(!uses_plain_http("registry.example.com:5000"));
        assert!(uses_plain_http("127.8.9.10:5000"));
        assert!(uses_plain_http("[::1]:5000"));
        for lookalike in [
            "127.attacker.example:5000",
            "127.0.0.1.nip.io",
            "localhost.example",
        ] {
            assert!(!uses_plain_http(lookalike), "{lookalike}");
        }
    }
}
