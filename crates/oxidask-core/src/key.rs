//! Task keys: the names results are stored under.
//!
//! A [`Key`] is what Dask writes as `"inc-3f2a…"` or `("ones-9c1d…", 0, 1)`: a human-readable
//! *prefix* (the operation or layer name), a 128-bit [`Token`] that identifies the call or the
//! layer, and an optional block *index* (up to [`MAX_KEY_DIMS`] coordinates) for the chunks of a
//! collection.
//!
//! # Invariants
//! - A key is `Copy` and 48 bytes; hashing it costs one multiply-mix, so dense maps of millions of
//!   keys stay cheap.
//! - Two keys are equal iff prefix text, token and index are equal. Prefixes are interned per
//!   process: the [`Prefix`] number is not stable across processes, its text is, so anything that
//!   leaves the process writes the text.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};

use crate::tokenize::Token;

/// The largest number of block coordinates a key can carry (arrays of up to six dimensions).
pub const MAX_KEY_DIMS: usize = 6;

/// An interned key prefix such as `inc` or `sum-aggregate`.
///
/// Interning makes [`Key`] `Copy`. Prefixes are expected to be few (operation and layer names);
/// each distinct text is kept for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix(u32);

struct Interner {
    ids: HashMap<&'static str, u32>,
    names: Vec<&'static str>,
}

fn interner() -> &'static RwLock<Interner> {
    static INTERNER: OnceLock<RwLock<Interner>> = OnceLock::new();
    INTERNER.get_or_init(|| {
        RwLock::new(Interner {
            ids: HashMap::new(),
            names: Vec::new(),
        })
    })
}

impl Prefix {
    /// Interns `name` and returns its prefix.
    pub fn intern(name: &str) -> Prefix {
        if let Some(&id) = interner()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .get(name)
        {
            return Prefix(id);
        }
        let mut guard = interner().write().unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = guard.ids.get(name) {
            return Prefix(id);
        }
        let id = u32::try_from(guard.names.len()).expect("more than 4 billion key prefixes");
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        guard.names.push(leaked);
        guard.ids.insert(leaked, id);
        Prefix(id)
    }

    /// The prefix text.
    pub fn as_str(self) -> &'static str {
        interner().read().unwrap_or_else(|p| p.into_inner()).names[self.0 as usize]
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({:?})", self.as_str())
    }
}

/// The name of a task and of the result it produces.
///
/// ```
/// use oxidask_core::{Key, Token};
/// let k = Key::new("inc", Token::from_u128(0xabc));
/// assert_eq!(k.prefix_str(), "inc");
/// assert_eq!(k.to_string(), "inc-00000000000000000000000000000abc");
/// let b = Key::block("ones", Token::from_u128(1), &[0, 3]);
/// assert_eq!(b.index(), &[0, 3]);
/// assert_eq!(b.to_string().parse::<Key>().unwrap(), b);
/// ```
#[derive(Clone, Copy)]
pub struct Key {
    token: [u64; 2],
    prefix: Prefix,
    ndim: u8,
    index: [u32; MAX_KEY_DIMS],
}

impl Key {
    /// A key without block index.
    pub fn new(prefix: &str, token: Token) -> Key {
        Key::from_parts(Prefix::intern(prefix), token, &[])
    }

    /// A key for block `index` of a collection layer.
    ///
    /// # Panics
    /// If `index` has more than [`MAX_KEY_DIMS`] coordinates; collections check their
    /// dimensionality up front and report it as an error.
    pub fn block(prefix: &str, token: Token, index: &[u32]) -> Key {
        Key::from_parts(Prefix::intern(prefix), token, index)
    }

    /// A key from an already interned prefix.
    ///
    /// # Panics
    /// If `index` has more than [`MAX_KEY_DIMS`] coordinates.
    pub fn from_parts(prefix: Prefix, token: Token, index: &[u32]) -> Key {
        assert!(
            index.len() <= MAX_KEY_DIMS,
            "a key carries at most {MAX_KEY_DIMS} block coordinates, got {}",
            index.len()
        );
        let mut idx = [0u32; MAX_KEY_DIMS];
        idx[..index.len()].copy_from_slice(index);
        let t = token.as_u128();
        Key {
            token: [t as u64, (t >> 64) as u64],
            prefix,
            ndim: index.len() as u8,
            index: idx,
        }
    }

    /// The interned prefix.
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// The prefix text (`inc`, `sum-aggregate`, …): what the dashboard groups tasks by.
    pub fn prefix_str(&self) -> &'static str {
        self.prefix.as_str()
    }

    /// The token that identifies the call or layer.
    pub fn token(&self) -> Token {
        Token::from_u128(self.token[0] as u128 | ((self.token[1] as u128) << 64))
    }

    /// The block coordinates (empty for plain task keys).
    pub fn index(&self) -> &[u32] {
        &self.index[..self.ndim as usize]
    }

    /// A short label for pictures: `inc-3f2a91c0` or `ones-9c1d22aa (0, 1)`.
    pub fn short(&self) -> String {
        let hex = format!("{:032x}", self.token().as_u128());
        if self.ndim == 0 {
            format!("{}-{}", self.prefix_str(), &hex[..8])
        } else {
            let idx: Vec<String> = self.index().iter().map(|i| i.to_string()).collect();
            format!("{}-{} ({})", self.prefix_str(), &hex[..8], idx.join(", "))
        }
    }

    /// Mixes the key into one 64-bit value (used by `Hash`).
    #[inline]
    fn mix(&self) -> u64 {
        let mut h = self.token[0] ^ self.token[1].rotate_left(29) ^ ((self.prefix.0 as u64) << 40);
        for &i in self.index() {
            h = (h ^ i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        h ^ (h >> 31)
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
            && self.prefix == other.prefix
            && self.ndim == other.ndim
            && self.index() == other.index()
    }
}

impl Eq for Key {}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.mix());
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Orders by prefix text, then token, then index: stable across processes.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.prefix_str()
            .cmp(other.prefix_str())
            .then_with(|| self.token().cmp(&other.token()))
            .then_with(|| self.index().cmp(other.index()))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ndim == 0 {
            write!(f, "{}-{}", self.prefix_str(), self.token())
        } else {
            write!(f, "('{}-{}'", self.prefix_str(), self.token())?;
            for i in self.index() {
                write!(f, ", {i}")?;
            }
            write!(f, ")")
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a task key: {reason} (expected `name-<32 hex digits>` or `('name-<32 hex digits>', 0, 1)`)")]
pub struct ParseKeyError {
    text: String,
    reason: &'static str,
}

impl FromStr for Key {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Key, ParseKeyError> {
        let err = |reason| ParseKeyError {
            text: s.to_owned(),
            reason,
        };
        let t = s.trim();
        let (name, index) = if let Some(inner) = t.strip_prefix("('") {
            let inner = inner.strip_suffix(')').ok_or_else(|| err("missing `)`"))?;
            let (name, rest) = inner
                .split_once('\'')
                .ok_or_else(|| err("missing closing quote"))?;
            let mut index = Vec::new();
            for part in rest.split(',').skip(1) {
                index.push(
                    part.trim()
                        .parse::<u32>()
                        .map_err(|_| err("block index is not a number"))?,
                );
            }
            if index.len() > MAX_KEY_DIMS {
                return Err(err("too many block coordinates"));
            }
            (name, index)
        } else {
            (t, Vec::new())
        };
        let (prefix, hex) = name
            .rsplit_once('-')
            .ok_or_else(|| err("no `-` before the token"))?;
        if hex.len() != 32 {
            return Err(err("the token is not 32 hex digits"));
        }
        let token = u128::from_str_radix(hex, 16).map_err(|_| err("the token is not hex"))?;
        Ok(Key::from_parts(
            Prefix::intern(prefix),
            Token::from_u128(token),
            &index,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_content_not_interning_order() {
        let a = Key::new("alpha", Token::from_u128(7));
        let b = Key::new("alpha", Token::from_u128(7));
        assert_eq!(a, b);
        assert_ne!(a, Key::new("beta", Token::from_u128(7)));
        assert_ne!(a, Key::block("alpha", Token::from_u128(7), &[0]));
        assert_eq!(std::mem::size_of::<Key>(), 48);
    }

    #[test]
    fn display_round_trips() {
        for k in [
            Key::new("inc", Token::from_u128(u128::MAX)),
            Key::new("sum-aggregate", Token::from_u128(12)),
            Key::block("ones", Token::from_u128(99), &[1, 2, 3, 4, 5, 6]),
        ] {
            assert_eq!(k.to_string().parse::<Key>().unwrap(), k);
        }
        assert!("nonsense".parse::<Key>().is_err());
        assert!("x-12".parse::<Key>().is_err());
    }

    #[test]
    #[should_panic(expected = "at most 6 block coordinates")]
    fn too_many_dimensions_is_refused() {
        let _ = Key::block("x", Token::from_u128(1), &[0; 7]);
    }
}
