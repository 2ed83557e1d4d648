//! API token secrets: made here, shown once, stored only as their SHA-256.

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// What every Ferry token begins with (so a leaked one is recognisable in a scan).
pub const PREFIX: &str = "ferry_";

/// A new secret: the prefix and 32 random bytes in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// What is stored and looked up: the secret's SHA-256. A secret of 256 random bits needs
/// no slow hash; looking up by hash never compares secrets byte by byte.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_prefixed_and_hash_to_32_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert_eq!(hash(&a).len(), 32);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}
