//! Identifiers shaped like 1Password's: 26 characters of base32. User ids are upper-case,
//! group ids lower-case (as recorded).

use rand::Rng;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_id() -> String {
    let mut rng = rand::rng();
    (0..26).map(|_| char::from(ALPHABET[rng.random_range(0..32)])).collect()
}

pub fn new_user_id() -> String {
    base32_id()
}

pub fn new_group_id() -> String {
    base32_id().to_ascii_lowercase()
}

/// Ids of events, sessions and the like.
pub fn new_uuid() -> String {
    base32_id()
}
