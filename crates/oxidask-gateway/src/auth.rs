//! Who is asking: bearer tokens (as the seed's gateway uses) and HTTP basic authentication
//! against a password file, both read from files the operator writes.
//!
//! - Token file: a line `USER TOKEN` per token (`#` comments); a request sends
//!   `Authorization: Bearer TOKEN`.
//! - Password file: a line `USER:sha256:HEX` per user, `HEX` being the SHA-256 of the password
//!   (`printf %s 'secret' | sha256sum`); a request sends `Authorization: Basic base64(USER:PASSWORD)`.
//!
//! Secrets are compared in constant time; a failed check says only that it failed.

use std::collections::HashMap;
use std::path::Path;

use crate::GatewayError;

/// The gateway's users and their credentials.
#[derive(Debug, Default, Clone)]
pub struct Authenticator {
    tokens: Vec<(String, Vec<u8>)>,
    passwords: HashMap<String, [u8; 32]>,
    anonymous: bool,
}

impl Authenticator {
    /// No credentials: every request is refused (until files are added).
    pub fn new() -> Authenticator {
        Authenticator::default()
    }

    /// Every request is the user `anonymous` (for a gateway only its operator can reach).
    pub fn anonymous() -> Authenticator {
        Authenticator {
            anonymous: true,
            ..Authenticator::default()
        }
    }

    /// Adds `USER TOKEN` lines.
    pub fn with_tokens(mut self, text: &str) -> Result<Authenticator, String> {
        for (i, line) in lines(text) {
            let mut parts = line.split_whitespace();
            let (Some(user), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("token file line {i}: expected `USER TOKEN`"));
            };
            check_user(user).map_err(|e| format!("token file line {i}: {e}"))?;
            if token.len() < 16 {
                return Err(format!(
                    "token file line {i}: the token of {user} is shorter than 16 characters"
                ));
            }
            self.tokens
                .push((user.to_owned(), token.as_bytes().to_vec()));
        }
        Ok(self)
    }

    /// Adds `USER:sha256:HEX` lines.
    pub fn with_passwords(mut self, text: &str) -> Result<Authenticator, String> {
        for (i, line) in lines(text) {
            let mut parts = line.splitn(3, ':');
            let (Some(user), Some("sha256"), Some(hex)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "password file line {i}: expected `USER:sha256:HEX`"
                ));
            };
            check_user(user).map_err(|e| format!("password file line {i}: {e}"))?;
            let digest = parse_hex32(hex.trim())
                .ok_or_else(|| format!("password file line {i}: HEX must be 64 hex digits"))?;
            self.passwords.insert(user.to_owned(), digest);
        }
        Ok(self)
    }

    /// Reads a token file.
    pub fn with_token_file(self, path: &Path) -> Result<Authenticator, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        self.with_tokens(&text)
    }

    /// Reads a password file.
    pub fn with_password_file(self, path: &Path) -> Result<Authenticator, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        self.with_passwords(&text)
    }

    /// Whether any request could be accepted.
    pub fn is_configured(&self) -> bool {
        self.anonymous || !self.tokens.is_empty() || !self.passwords.is_empty()
    }

    /// The user an `Authorization` header value names, if its credentials are right.
    pub fn user(&self, authorization: Option<&str>) -> Result<String, GatewayError> {
        if self.anonymous {
            return Ok("anonymous".to_owned());
        }
        let denied = || {
            GatewayError::Unauthorized(
                "missing or wrong credentials: send `Authorization: Bearer TOKEN` or basic \
                 authentication"
                    .to_owned(),
            )
        };
        let header = authorization.ok_or_else(denied)?.trim();
        if let Some(token) = strip_scheme(header, "bearer") {
            let mut found = None;
            for (user, t) in &self.tokens {
                // Every token is compared, so timing says nothing about which matched.
                if ct_eq(t, token.as_bytes()) {
                    found = Some(user.clone());
                }
            }
            return found.ok_or_else(denied);
        }
        if let Some(encoded) = strip_scheme(header, "basic") {
            let decoded = decode_base64(encoded).ok_or_else(denied)?;
            let text = String::from_utf8(decoded).map_err(|_| denied())?;
            let (user, password) = text.split_once(':').ok_or_else(denied)?;
            let want = self.passwords.get(user);
            let got = sha256(password.as_bytes());
            let ok = want.map(|w| ct_eq(w, &got)).unwrap_or(false);
            return if ok {
                Ok(user.to_owned())
            } else {
                Err(denied())
            };
        }
        Err(denied())
    }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {user:?} must be 1-64 letters, digits, '-' or '_'"
        ))
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The SHA-256 digest of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Standard base64 (with or without padding); `None` when malformed.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn encode_base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn bearer_tokens_name_their_user() {
        let a = Authenticator::new()
            .with_tokens("# users\nalice aaaaaaaaaaaaaaaaaaaa\nbob bbbbbbbbbbbbbbbbbbbb\n")
            .unwrap();
        assert_eq!(a.user(Some("Bearer bbbbbbbbbbbbbbbbbbbb")).unwrap(), "bob");
        assert_eq!(
            a.user(Some("bearer aaaaaaaaaaaaaaaaaaaa")).unwrap(),
            "alice"
        );
        for bad in [
            None,
            Some("Bearer nope"),
            Some("Bearer"),
            Some("Token aaaaaaaaaaaaaaaaaaaa"),
        ] {
            assert!(
                matches!(a.user(bad), Err(GatewayError::Unauthorized(_))),
                "{bad:?}"
            );
        }
        assert!(Authenticator::new().with_tokens("alice short").is_err());
        assert!(Authenticator::new()
            .with_tokens("al ice xxxxxxxxxxxxxxxxxxxxx")
            .is_err());
    }

    #[test]
    fn basic_auth_against_sha256_passwords() {
        let line = format!("carol:sha256:{}\n", hex(sha256(b"s3cret pass")));
        let a = Authenticator::new().with_passwords(&line).unwrap();
        let ok = format!("Basic {}", encode_base64(b"carol:s3cret pass"));
        assert_eq!(a.user(Some(&ok)).unwrap(), "carol");
        let wrong = format!("Basic {}", encode_base64(b"carol:guess"));
        assert!(a.user(Some(&wrong)).is_err());
        let nobody = format!("Basic {}", encode_base64(b"dave:s3cret pass"));
        assert!(a.user(Some(&nobody)).is_err());
        assert!(a.user(Some("Basic !!!")).is_err());
        assert!(Authenticator::new()
            .with_passwords("carol:md5:abc")
            .is_err());
    }

    #[test]
    fn base64_round_trips() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"\x00\xff\x10 user:pw",
        ] {
            assert_eq!(decode_base64(&encode_base64(data)).unwrap(), data);
        }
        assert_eq!(encode_base64(b"user:pw"), "dXNlcjpwdw==");
    }
}
