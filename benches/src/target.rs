//! Where the load goes. Only loopback addresses are accepted: this tool floods whatever it
//! is pointed at, and the machines it runs on may load only servers they started themselves.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `http://HOST:PORT` target that resolved to a loopback address.
#[derive(Clone, Debug)]
pub struct Target {
    /// What goes in the `Host` header, as the user wrote it.
    pub authority: String,
    pub addr: SocketAddr,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TargetError {
    Scheme(String),
    Malformed(String),
    Resolve(String),
    NotLoopback(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Scheme(t) => write!(f, "target {t:?}: only http:// targets are supported"),
            TargetError::Malformed(t) => {
                write!(f, "target {t:?}: expected http://HOST:PORT, e.g. http://127.0.0.1:5000")
            }
            TargetError::Resolve(t) => write!(f, "target {t:?}: host does not resolve"),
            TargetError::NotLoopback(t) => write!(
                f,
                "target {t:?}: not a loopback address; the load generator only targets 127.0.0.0/8 or ::1"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

impl Target {
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(TargetError::Malformed(url.to_string()));
        }
        let with_port = if has_port(authority) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .map_err(|_| TargetError::Resolve(url.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(TargetError::Resolve(url.to_string()));
        }
        // Every address the name resolves to must be loopback, so a resolver cannot steer a
        // later connect elsewhere.
        if !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(TargetError::NotLoopback(url.to_string()));
        }
        Ok(Target {
            authority: authority.to_string(),
            addr: addrs[0],
        })
    }
}

fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        // `[::1]:5000` has a port; `[::1]` does not.
        Some(i) => !authority[i..].contains(']'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        let t = Target::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(t.addr, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:5000");
        let t = Target::parse("http://127.1.2.3:81/").unwrap();
        assert_eq!(t.addr.port(), 81);
        let t = Target::parse("http://[::1]:5000").unwrap();
        assert!(t.addr.ip().is_loopback());
        let t = Target::parse("http://localhost:5000").unwrap();
        assert!(t.addr.ip().is_loopback());
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        for url in [
            "http://10.0.0.1:5000",
            "http://192.168.1.1:80",
            "http://8.8.8.8:53",
        ] {
            assert_eq!(
                Target::parse(url).unwrap_err(),
                TargetError::NotLoopback(url.to_string())
            );
        }
    }

    #[test]
    fn malformed_targets_are_refused() {
        assert!(matches!(
            Target::parse("https://127.0.0.1:5000"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("127.0.0.1:5000"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("http://127.0.0.1:5000/v2/x"),
            Err(TargetError::Malformed(_))
        ));
        assert!(matches!(
            Target::parse("http://"),
            Err(TargetError::Malformed(_))
        ));
    }
}
