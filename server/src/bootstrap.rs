//! What the first `berth serve` on an empty data folder creates: the bearer token key
//! (`DATA/token-key`, 32 random bytes) and the admin token (`DATA/admin-token`), both mode
//! 0600 (docs/auth.md, "Authentication"). The admin secret is written to its file before
//! its record is stored: a crash in between leaves no admin token in the store, so the next
//! start makes a new one and overwrites the file, instead of locking the operator out.

use crate::auth::credentials::ADMIN_PREFIX;
use crate::secret::{new_token_id, new_token_secret, random_bytes, sha256};
use berth_engine::{Engine, TokenKind, TokenRec};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const TOKEN_KEY: &str = "token-key";
pub const ADMIN_TOKEN: &str = "admin-token";

/// Writes `bytes` to a new file readable by its owner only, durably.
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    if replace {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The bearer token key, created on first start.
pub fn token_key(data: &Path) -> Result<[u8; 32], String> {
    let path = data.join(TOKEN_KEY);
    match File::open(&path) {
        Ok(mut f) => {
            let mut b = Vec::new();
            f.read_to_end(&mut b)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            b.try_into().map_err(|_| {
                format!(
                    "{} is not 32 bytes; delete it to make a new key (bearer tokens issued so far stop working)",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let b = random_bytes(32)?;
            write_private(&path, &b, false)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut key = [0u8; 32];
            key.copy_from_slice(&b);
            Ok(key)
        }
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}

/// `berth reset-admin-token`: revokes every admin token, then makes a new one and writes it
/// to `DATA/admin-token`, for an operator who lost the file (or fears it leaked). Runs with
/// the server stopped (it holds the data directory's lock). Returns the ids revoked and the
/// file written.
pub fn reset_admin_token(
    e: &Engine,
    data: &Path,
    unix: u64,
) -> Result<(Vec<String>, PathBuf), String> {
    let mut revoked = Vec::new();
    for t in e.admin_tokens().map_err(|e| e.to_string())? {
        if t.kind == TokenKind::Admin && t.revoked.is_none() {
            e.revoke_token(&t.id, unix).map_err(|e| e.to_string())?;
            revoked.push(t.id);
        }
    }
    let path = make_admin_token(e, data, unix, "admin token made by berth reset-admin-token")?
        .ok_or("an admin token is still active after revoking them all; run the command again")?;
    Ok((revoked, path))
}

/// Creates the admin token when the store has none; returns the file holding its secret.
pub fn admin_token(e: &Engine, data: &Path, unix: u64) -> Result<Option<PathBuf>, String> {
    make_admin_token(e, data, unix, "admin token created at first start")
}

/// The admin token, unless one is active, with `description` on its record.
fn make_admin_token(
    e: &Engine,
    data: &Path,
    unix: u64,
    description: &str,
) -> Result<Option<PathBuf>, String> {
    if e.has_admin_token().map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let secret = new_token_secret(ADMIN_PREFIX)?;
    let path = data.join(ADMIN_TOKEN);
    let mut text = secret.expose().to_string();
    text.push('\n');
    write_private(&path, text.as_bytes(), true)
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    let rec = TokenRec {
        id: new_token_id()?,
        kind: TokenKind::Admin,
        org: None,
        read: true,
        write: true,
        registries: Vec::new(),
        description: description.into(),
        created: unix,
        expires: None,
        last_used: None,
        revoked: None,
        hash: sha256(secret.expose().as_bytes()),
    };
    e.create_token(rec).map_err(|err| err.to_string())?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_key_is_created_once_private_and_then_reused() {
        let d = tempfile::tempdir().unwrap();
        let k1 = token_key(d.path()).unwrap();
        let k2 = token_key(d.path()).unwrap();
        assert_eq!(k1, k2);
        let mode = std::fs::metadata(d.path().join(TOKEN_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(d.path().join(TOKEN_KEY), b"short").unwrap();
        assert!(token_key(d.path()).unwrap_err().contains("32 bytes"));
    }
}
