//! Field protection (GB/T 35273-2020, GB/T 39786-2021): keyed hashes for
//! equality look-ups without the plain value, and authenticated encryption
//! of personal data at rest.
//!
//! * `hash = "hmac-sm3"`: HMAC-SM3 under the `[protection] hash_key`, hex.
//!   `hash = "sha256"` is unkeyed and only fit for values with a large space:
//!   an 11-digit phone number's SHA-256 is reversed by trying them all.
//! * `protect = "sm4"` (SM4-GCM) or `protect = "aes-256-gcm"`: a random
//!   96-bit nonce per value, the 128-bit tag, and the key id stored with the
//!   ciphertext, so keys rotate: `[protection] encrypt_key` names the key new
//!   values use; every key listed in `[protection] keys` still decrypts.
//!
//! A ciphertext is one ASCII string (it fits a `varchar`):
//!
//! ```text
//! hlx1:sm4-gcm:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>
//! ```
//!
//! The text before the last `:` is the AEAD's associated data, so a value
//! cannot be moved to another key id or cipher without failing to decrypt.
//!
//! Key files hold the key in hex (16 bytes for SM4, 32 for AES-256; at least
//! 16 for HMAC-SM3); `hlx keygen` writes one.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, AesGcm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

type Sm4Gcm = AesGcm<sm4::Sm4, aes_gcm::aead::consts::U12>;

const ENVELOPE: &str = "hlx1";
const NONCE_LEN: usize = 12;

/// An authenticated cipher for `protect = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Sm4Gcm,
    Aes256Gcm,
}

impl Cipher {
    /// The mapping's spelling: `sm4` (or `sm4-gcm`), `aes-256-gcm`.
    pub fn parse(s: &str) -> Option<Cipher> {
        match s {
            "sm4" | "sm4-gcm" => Some(Cipher::Sm4Gcm),
            "aes-256-gcm" => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }

    /// The name stored in the ciphertext.
    pub fn as_str(self) -> &'static str {
        match self {
            Cipher::Sm4Gcm => "sm4-gcm",
            Cipher::Aes256Gcm => "aes-256-gcm",
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Cipher::Sm4Gcm => 16,
            Cipher::Aes256Gcm => 32,
        }
    }
}

/// A digest for `hash = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Sha256,
    HmacSm3,
}

impl HashKind {
    pub fn parse(s: &str) -> Option<HashKind> {
        match s {
            "sha256" => Some(HashKind::Sha256),
            "hmac-sm3" => Some(HashKind::HmacSm3),
            _ => None,
        }
    }
}

/// Key material. `Debug` never shows it; the bytes are wiped on drop.
pub struct KeyBytes(Vec<u8>);

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyBytes({} bytes)", self.0.len())
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // A volatile write so the wipe is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl KeyBytes {
    /// Parses a key file's text: hex, white space ignored.
    pub fn from_hex(text: &str) -> Result<KeyBytes, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = hex::decode(&compact).map_err(|e| format!("expected the key in hex ({e})"))?;
        if bytes.len() < 16 {
            return Err(format!("the key has {} bytes; at least 16 are needed", bytes.len()));
        }
        Ok(KeyBytes(bytes))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The keys of `[protection]`, by id, and which ones new values use.
#[derive(Debug, Default, Clone)]
pub struct Keyring {
    keys: BTreeMap<String, Arc<KeyBytes>>,
    /// `[protection] encrypt_key`
    pub encrypt_key: Option<String>,
    /// `[protection] hash_key`
    pub hash_key: Option<String>,
}

impl Keyring {
    pub fn insert(&mut self, id: &str, key: KeyBytes) {
        self.keys.insert(id.to_string(), Arc::new(key));
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    pub fn key(&self, id: &str) -> Option<&KeyBytes> {
        self.keys.get(id).map(|k| &**k)
    }

    /// Checks that `cipher` can encrypt with the current key; the message
    /// says what to configure.
    pub fn can_encrypt(&self, cipher: Cipher) -> Result<(), String> {
        let id = self
            .encrypt_key
            .as_deref()
            .ok_or("needs `[protection] encrypt_key` (and the key in `[protection] keys`)")?;
        let key = self
            .key(id)
            .ok_or_else(|| format!("`[protection] encrypt_key = \"{id}\"` is not in `[protection] keys`"))?;
        if key.len() != cipher.key_len() {
            return Err(format!(
                "{} needs a {}-byte key; key `{id}` has {} bytes",
                cipher.as_str(),
                cipher.key_len(),
                key.len()
            ));
        }
        Ok(())
    }

    pub fn can_hash(&self, kind: HashKind) -> Result<(), String> {
        match kind {
            HashKind::Sha256 => Ok(()),
            HashKind::HmacSm3 => {
                let id = self
                    .hash_key
                    .as_deref()
                    .ok_or("needs `[protection] hash_key` (and the key in `[protection] keys`)")?;
                if self.contains(id) {
                    Ok(())
                } else {
                    Err(format!(
                        "`[protection] hash_key = \"{id}\"` is not in `[protection] keys`"
                    ))
                }
            }
        }
    }

    /// Encrypts `plain` under the current key with a fresh random nonce.
    pub fn encrypt(&self, cipher: Cipher, plain: &str) -> Result<String, String> {
        self.can_encrypt(cipher)?;
        let id = self.encrypt_key.as_deref().expect("checked");
        let key = self.key(id).expect("checked");
        let header = format!("{ENVELOPE}:{}:{id}", cipher.as_str());
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: header.as_bytes(),
        };
        let (nonce, sealed) = match cipher {
            Cipher::Sm4Gcm => {
                let c = Sm4Gcm::new_from_slice(&key.0).map_err(|e| e.to_string())?;
                let n = Sm4Gcm::generate_nonce(&mut OsRng);
                (n.to_vec(), c.encrypt(&n, payload))
            }
            Cipher::Aes256Gcm => {
                let c = Aes256Gcm::new_from_slice(&key.0).map_err(|e| e.to_string())?;
                let n = Aes256Gcm::generate_nonce(&mut OsRng);
                (n.to_vec(), c.encrypt(&n, payload))
            }
        };
        let sealed = sealed.map_err(|_| "encryption failed".to_string())?;
        let mut blob = nonce;
        blob.extend_from_slice(&sealed);
        Ok(format!("{header}:{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Decrypts a value [`Keyring::encrypt`] wrote, with whichever listed key
    /// its id names.
    pub fn decrypt(&self, value: &str) -> Result<String, String> {
        let value = value.trim();
        let (header, b64) = value.rsplit_once(':').ok_or("not an hlx ciphertext")?;
        let mut parts = header.splitn(3, ':');
        let (Some(ENVELOPE), Some(cipher), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("not an hlx ciphertext (expected hlx1:<cipher>:<key id>:<data>)".into());
        };
        let cipher = Cipher::parse(cipher).ok_or_else(|| format!("unknown cipher `{cipher}`"))?;
        let key = self
            .key(id)
            .ok_or_else(|| format!("key `{id}` is not in `[protection] keys`"))?;
        let blob = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| "the ciphertext is not valid base64url".to_string())?;
        if blob.len() < NONCE_LEN + 16 {
            return Err("the ciphertext is truncated".into());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: header.as_bytes(),
        };
        let plain = match cipher {
            Cipher::Sm4Gcm => Sm4Gcm::new_from_slice(&key.0)
                .map_err(|_| format!("key `{id}` does not fit {}", cipher.as_str()))?
                .decrypt(nonce.into(), payload),
            Cipher::Aes256Gcm => Aes256Gcm::new_from_slice(&key.0)
                .map_err(|_| format!("key `{id}` does not fit {}", cipher.as_str()))?
                .decrypt(nonce.into(), payload),
        }
        .map_err(|_| {
            format!("authentication failed: the value was altered or key `{id}` is not the key it was written with")
        })?;
        String::from_utf8(plain).map_err(|_| "the plain text is not UTF-8".into())
    }

    /// The hash of `plain` (lower-case hex).
    pub fn hash(&self, kind: HashKind, plain: &str) -> Result<String, String> {
        match kind {
            HashKind::Sha256 => Ok(hex::encode(Sha256::digest(plain.as_bytes()))),
            HashKind::HmacSm3 => {
                self.can_hash(kind)?;
                let key = self.key(self.hash_key.as_deref().expect("checked")).expect("checked");
                Ok(hex::encode(hmac_sm3(&key.0, plain.as_bytes())))
            }
        }
    }
}

/// HMAC-SM3 (RFC 2104 construction over SM3).
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<sm3::Sm3> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// HMAC-SM3 under `key` of `label ‖ 0x00 ‖ data`: a keyed digest kept apart
/// (by the label) from any other use of the same key.
pub fn hmac_sm3_labelled(key: &KeyBytes, label: &str, data: &str) -> [u8; 32] {
    let mut m = <Hmac<sm3::Sm3> as Mac>::new_from_slice(&key.0).expect("HMAC takes any key length");
    m.update(label.as_bytes());
    m.update(&[0]);
    m.update(data.as_bytes());
    m.finalize().into_bytes().into()
}

/// A fresh random key in hex, for `hlx keygen`.
pub fn generate_key_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm4::cipher::BlockEncrypt;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn ring() -> Keyring {
        let mut r = Keyring::default();
        r.insert("k1", KeyBytes::from_hex("0123456789abcdeffedcba9876543210").unwrap());
        r.insert("a1", KeyBytes::from_hex(&"ab".repeat(32)).unwrap());
        r.insert("h1", KeyBytes::from_hex(&"5a".repeat(16)).unwrap());
        r.encrypt_key = Some("k1".into());
        r.hash_key = Some("h1".into());
        r
    }

    /// GB/T 32905-2016 appendix A, examples 1 and 2.
    #[test]
    fn sm3_matches_the_standard_examples() {
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3::Sm3::digest("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    /// GB/T 32907-2016 appendix A, example 1: one block, key = plain text.
    #[test]
    fn sm4_matches_the_standard_example() {
        let key = unhex("0123456789abcdeffedcba9876543210");
        let c = sm4::Sm4::new_from_slice(&key).unwrap();
        let mut block = sm4::cipher::generic_array::GenericArray::clone_from_slice(&key);
        c.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
    }

    /// RFC 8998 appendix A.1 (SM4-GCM), the construction `protect = "sm4"` uses.
    #[test]
    fn sm4_gcm_matches_rfc_8998() {
        let key = unhex("0123456789ABCDEFFEDCBA9876543210");
        let nonce = unhex("00001234567800000000ABCD");
        let aad = unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plain = unhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let sealed = Sm4Gcm::new_from_slice(&key)
            .unwrap()
            .encrypt(nonce.as_slice().into(), Payload { msg: &plain, aad: &aad })
            .unwrap();
        let (ct, tag) = sealed.split_at(plain.len());
        assert_eq!(
            hex::encode_upper(ct),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
             D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        );
        assert_eq!(hex::encode_upper(tag), "83DE3541E4C2B58177E065A9BF7B62EC");
    }

    /// An independent value: Python's `hmac.new(key, msg, 'sm3')` (OpenSSL).
    #[test]
    fn hmac_sm3_matches_an_independent_implementation() {
        assert_eq!(hex::encode(hmac_sm3(&[0x5a; 16], b"13800138000")), HMAC_SM3_5A16_PHONE);
    }
    const HMAC_SM3_5A16_PHONE: &str = "6555384e21f02fd30dd9025a31e6f8a8374b3a4f2838440f282e0a87d2a7b046";

    #[test]
    fn values_round_trip_under_either_cipher_with_a_fresh_nonce_each_time() {
        let mut r = ring();
        for cipher in [Cipher::Sm4Gcm, Cipher::Aes256Gcm] {
            r.encrypt_key = Some(if cipher == Cipher::Sm4Gcm { "k1" } else { "a1" }.into());
            let a = r.encrypt(cipher, "张三 13800138000").unwrap();
            let b = r.encrypt(cipher, "张三 13800138000").unwrap();
            assert_ne!(a, b, "a random nonce per value");
            assert!(a.starts_with(&format!("hlx1:{}:", cipher.as_str())), "{a}");
            assert!(a.is_ascii() && a.len() < 128, "{a}");
            assert_eq!(r.decrypt(&a).unwrap(), "张三 13800138000");
            assert_eq!(r.decrypt(&b).unwrap(), "张三 13800138000");
        }
    }

    #[test]
    fn old_keys_still_decrypt_after_rotation() {
        let mut r = ring();
        let old = r.encrypt(Cipher::Sm4Gcm, "13800138000").unwrap();
        r.insert("k2", KeyBytes::from_hex(&"11".repeat(16)).unwrap());
        r.encrypt_key = Some("k2".into());
        let new = r.encrypt(Cipher::Sm4Gcm, "13800138000").unwrap();
        assert!(new.contains(":k2:"), "{new}");
        assert_eq!(r.decrypt(&old).unwrap(), "13800138000");
        assert_eq!(r.decrypt(&new).unwrap(), "13800138000");
    }

    #[test]
    fn tampering_and_wrong_keys_are_refused() {
        let r = ring();
        let c = r.encrypt(Cipher::Sm4Gcm, "13800138000").unwrap();
        // A flipped bit in the data.
        let (head, data) = c.rsplit_once(':').unwrap();
        let mut blob = URL_SAFE_NO_PAD.decode(data).unwrap();
        blob[NONCE_LEN] ^= 1;
        let flipped = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&blob));
        assert!(r.decrypt(&flipped).unwrap_err().contains("authentication failed"));
        // The same data claimed under another key id of the right size.
        let mut r2 = ring();
        r2.insert("k9", KeyBytes::from_hex("0123456789abcdeffedcba9876543210").unwrap());
        let moved = c.replace(":k1:", ":k9:");
        assert!(r2.decrypt(&moved).unwrap_err().contains("authentication failed"));
        assert!(r.decrypt(&moved).unwrap_err().contains("`k9` is not in"));
        assert!(r.decrypt("13800138000").is_err());
        assert!(r.decrypt("hlx1:sm4-gcm:k1:AAAA").unwrap_err().contains("truncated"));
    }

    #[test]
    fn a_key_of_the_wrong_size_or_a_missing_key_is_named() {
        let mut r = ring();
        r.encrypt_key = Some("a1".into());
        assert!(r
            .can_encrypt(Cipher::Sm4Gcm)
            .unwrap_err()
            .contains("16-byte key; key `a1` has 32"));
        r.encrypt_key = Some("nope".into());
        assert!(r
            .can_encrypt(Cipher::Sm4Gcm)
            .unwrap_err()
            .contains("not in `[protection] keys`"));
        r.encrypt_key = None;
        assert!(r.can_encrypt(Cipher::Aes256Gcm).unwrap_err().contains("encrypt_key"));
        assert!(KeyBytes::from_hex("zz").is_err());
        assert!(KeyBytes::from_hex("00ff").unwrap_err().contains("at least 16"));
    }

    #[test]
    fn hashes_are_stable_and_keyed() {
        let r = ring();
        assert_eq!(
            r.hash(HashKind::Sha256, "abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let a = r.hash(HashKind::HmacSm3, "13800138000").unwrap();
        assert_eq!(a, r.hash(HashKind::HmacSm3, "13800138000").unwrap());
        let mut r2 = ring();
        r2.insert("h1", KeyBytes::from_hex(&"5b".repeat(16)).unwrap());
        assert_ne!(a, r2.hash(HashKind::HmacSm3, "13800138000").unwrap());
    }
}
