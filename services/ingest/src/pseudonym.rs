//! Pseudonymisation at the door (SPEC 1): HMAC-SHA256 of the normalised national id
//! under a per-deployment secret key. The key never leaves this module except to the
//! key file it is loaded from or created in.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use kpr_domain::person::Pseudonym;
use sha2::Sha256;

/// Length of a pseudonymisation key in bytes.
pub const KEY_BYTES: usize = 32;

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("pseudonymisation key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file can be read by other users than its owner.
    #[error(
        "pseudonymisation key file {path} is readable by group or others (mode {mode:03o}); make it private (chmod 600) and start again"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The key text is not 64 hex digits.
    #[error("pseudonymisation key from {origin} must be 64 hex digits (32 bytes)")]
    Format {
        /// Where it came from (file path or variable name; never the key).
        origin: String,
    },
}

/// The secret key and the keyed hash.
#[derive(Clone)]
pub struct Pseudonymiser {
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<secret key>)")
    }
}

impl Pseudonymiser {
    /// From raw key bytes.
    pub fn new(key: [u8; KEY_BYTES]) -> Pseudonymiser {
        Pseudonymiser { key }
    }

    /// From 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str, origin: &str) -> Result<Pseudonymiser, KeyError> {
        let text = text.trim();
        let format = || KeyError::Format {
            origin: origin.to_string(),
        };
        if text.len() != KEY_BYTES * 2 {
            return Err(format());
        }
        let mut key = [0u8; KEY_BYTES];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).map_err(|_| format())?;
            key[i] = u8::from_str_radix(pair, 16).map_err(|_| format())?;
        }
        Ok(Pseudonymiser { key })
    }

    /// Reads the key from a file that only its owner may read: a key readable by
    /// others lets them re-identify every person, so such a file is refused.
    pub fn read_file(path: &Path) -> Result<Pseudonymiser, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let metadata = file.metadata().map_err(io)?;
            let mode = metadata.permissions().mode() & 0o777;
            // World-readable is always refused, and so is group-readable for a file
            // of our own (the operator's slip; chmod 600 mends it). A platform's
            // secret mount owned by another user and shared with us through a group
            // (Kubernetes: root-owned, mode 0440, the pod's fsGroup) is how such
            // platforms hand a secret to a non-root process, and stays allowed.
            let own = metadata.uid() == rustix::process::getuid().as_raw();
            if mode & 0o007 != 0 || (own && mode & 0o070 != 0) {
                return Err(KeyError::Exposed {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &file, &mut text).map_err(io)?;
        Pseudonymiser::from_hex(&text, &path.display().to_string())
    }

    /// Reads the key from `path`, or creates it there (mode 0600, random bytes from
    /// the operating system) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<(Pseudonymiser, bool), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok((Pseudonymiser::read_file(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_BYTES];
                let mut random = std::fs::File::open("/dev/urandom").map_err(io)?;
                std::io::Read::read_exact(&mut random, &mut key).map_err(io)?;
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                file.write_all(format!("{hex}\n").as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((Pseudonymiser { key }, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The pseudonym of a normalised id (11 digits).
    pub fn pseudonym(&self, normalised_id: &str) -> Pseudonym {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        #[allow(clippy::expect_used)]
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(normalised_id.as_bytes());
        Pseudonym(mac.finalize().into_bytes().into())
    }
}

/// Lowercase hex of a pseudonym (for digests and operator output; never of an id).
pub fn hex(pseudonym: &Pseudonym) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(pseudonym.0.len() * 2);
    for b in pseudonym.0 {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_deterministic() {
        let a = Pseudonymiser::new([1; 32]);
        let b = Pseudonymiser::new([2; 32]);
        assert_eq!(a.pseudonym("15055012345"), a.pseudonym("15055012345"));
        assert_ne!(a.pseudonym("15055012345"), b.pseudonym("15055012345"));
        assert_ne!(a.pseudonym("15055012345"), a.pseudonym("15055012346"));
    }

    #[test]
    fn rfc4231_test_case_2() {
        // HMAC-SHA256 with key "Jefe" over "what do ya want for nothing?".
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(
            hex(&Pseudonym(out)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pseudonym.key");
        let (first, created) = Pseudonymiser::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (second, created) = Pseudonymiser::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.pseudonym("x"), second.pseudonym("x"));
        assert!(Pseudonymiser::from_hex("abc", "test").is_err());
    }
}
