//! Keys to find an order by what a customer tells support, without keeping it: the
//! customer's e-mail address is stored only as a hash, scoped to the brand.

use sha2::{Digest, Sha256};

/// The lookup key of a customer's e-mail for `tenant`: SHA-256 of the brand and the
/// address as Centra and people write it (trimmed, any case). `None` for what is not an
/// address. An unkeyed hash of an address can be confirmed by whoever guesses the address
/// (what support does with it); it does not let a reader of the database list addresses.
pub fn email_key(tenant: &str, email: &str) -> Option<Vec<u8>> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') {
        return None;
    }
    let mut hash = Sha256::new();
    hash.update(b"ferry-email-v1\0");
    hash.update(tenant.as_bytes());
    hash.update(b"\0");
    hash.update(email.as_bytes());
    Some(hash.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_address_however_written_within_a_brand_only() {
        let a = email_key("acme", "Anna.Berg@Example.com ");
        assert_eq!(a, email_key("acme", "anna.berg@example.com"));
        assert_ne!(a, email_key("globex", "anna.berg@example.com"));
        assert_eq!(email_key("acme", "48170"), None);
        assert_eq!(a.map(|k| k.len()), Some(32));
    }
}
