//! Task keys: the names results are stored under.
//!
//! A [`Key`] is what Dask writes as `"inc-3f2a…"` or `("ones-9c1d…", 0, 1)`: a human-readable
//! *prefix* (the operation or layer name), a 96-bit token (the low 96 bits of a [`Token`]) that
//! identifies the call or the layer, and an optional block *index* (up to [`MAX_KEY_DIMS`]
//! coordinates) for the chunks of a collection.
//!
//! # Invariants
//! - A key is `Copy` and 32 bytes; hashing it costs one multiply-mix. Graphs hold millions of
//!   keys, and on this kind of machine memory touched is time, so the size is fixed by a test.
//! - 96 bits of token make an accidental collision among 10¹² keys about one in 10⁵.
//! - Two keys are equal iff prefix text, token and index are equal. Prefixes are interned per
//!   process: the [`Prefix`] number is not stable across processes, its text is, so anything that
//!   leaves the process writes the text.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};

use crate::tokenize::Token;

/// The largest number of block coordinates a key can carry. Collections with more block
/// dimensions fold the trailing ones into the last coordinate.
pub const MAX_KEY_DIMS: usize = 4;

/// Prefix ids use the low 28 bits of `Key::meta`; the number of coordinates the high 4.
const PREFIX_BITS: u32 = 28;
const PREFIX_MASK: u32 = (1 << PREFIX_BITS) - 1;

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

/// Distinct prefixes [`Prefix::try_intern`] accepts (text arriving from other processes is
/// interned with it, so peers together cannot grow the table without bound; the protocol
/// crate also limits what each connection may add, and lets some add nothing).
pub const MAX_PREFIXES: usize = 1 << 20;

thread_local! {
    /// The last prefix this thread interned: collections create many keys with one prefix.
    static LAST: std::cell::Cell<Option<(&'static str, u32)>> = const { std::cell::Cell::new(None) };
    /// This thread's copy of the table, so lookups take no lock once warm.
    static LOCAL: std::cell::RefCell<LocalTable> = std::cell::RefCell::new(LocalTable::default());
}

#[derive(Default)]
struct LocalTable {
    ids: HashMap<&'static str, u32>,
    names: Vec<&'static str>,
}

impl LocalTable {
    fn refresh(&mut self) {
        let g = interner().read().unwrap_or_else(|p| p.into_inner());
        for (i, &n) in g.names.iter().enumerate().skip(self.names.len()) {
            self.names.push(n);
            self.ids.insert(n, i as u32);
        }
    }
}

impl Prefix {
    /// Interns `name` and returns its prefix.
    ///
    /// # Panics
    /// If more than 268 million distinct prefixes were interned.
    pub fn intern(name: &str) -> Prefix {
        Prefix::lookup(name, usize::MAX).expect("more than 268 million distinct key prefixes")
    }

    /// Interns `name` unless the table already holds [`MAX_PREFIXES`] other prefixes.
    pub fn try_intern(name: &str) -> Option<Prefix> {
        Prefix::lookup(name, MAX_PREFIXES)
    }

    /// The prefix `name` if this process already interned it; never adds to the table.
    pub fn known(name: &str) -> Option<Prefix> {
        if let Some((last, id)) = LAST.with(|l| l.get()) {
            if last == name {
                return Some(Prefix(id));
            }
        }
        if let Some(id) = LOCAL.with(|t| t.borrow().ids.get(name).copied()) {
            return Some(Prefix(id));
        }
        interner()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .get(name)
            .map(|&id| Prefix(id))
    }

    /// How many distinct prefixes this process has interned.
    pub fn interned() -> usize {
        interner()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .names
            .len()
    }

    fn lookup(name: &str, limit: usize) -> Option<Prefix> {
        if let Some((last, id)) = LAST.with(|l| l.get()) {
            if last == name {
                return Some(Prefix(id));
            }
        }
        let local = LOCAL.with(|t| t.borrow().ids.get(name).copied());
        let id = match local {
            Some(id) => id,
            None => {
                let id = Prefix::intern_slow(name, limit)?;
                LOCAL.with(|t| t.borrow_mut().refresh());
                id
            }
        };
        let text = Prefix(id).as_str();
        LAST.with(|l| l.set(Some((text, id))));
        Some(Prefix(id))
    }

    fn intern_slow(name: &str, limit: usize) -> Option<u32> {
        if let Some(&id) = interner()
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .get(name)
        {
            return Some(id);
        }
        let mut guard = interner().write().unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = guard.ids.get(name) {
            return Some(id);
        }
        if guard.names.len() >= limit {
            return None;
        }
        let id = u32::try_from(guard.names.len())
            .ok()
            .filter(|&id| id <= PREFIX_MASK)?;
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        guard.names.push(leaked);
        guard.ids.insert(leaked, id);
        Some(id)
    }

    /// Its number in this process's interner (dense from 0; not stable across processes):
    /// for tables indexed by prefix.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The prefix text.
    pub fn as_str(self) -> &'static str {
        let i = self.0 as usize;
        LOCAL.with(|t| {
            if let Some(s) = t.borrow().names.get(i) {
                return *s;
            }
            let mut t = t.borrow_mut();
            t.refresh();
            t.names[i]
        })
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
/// assert_eq!(k.to_string(), "inc-000000000000000000000abc");
/// let b = Key::block("ones", Token::from_u128(1), &[0, 3]);
/// assert_eq!(b.index(), &[0, 3]);
/// assert_eq!(b.to_string().parse::<Key>().unwrap(), b);
/// ```
#[derive(Clone, Copy)]
pub struct Key {
    /// The low 96 bits of the token.
    token: [u32; 3],
    /// Prefix id (low 28 bits) and number of block coordinates (high 4 bits).
    meta: u32,
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
            token: [t as u32, (t >> 32) as u32, (t >> 64) as u32],
            meta: prefix.0 | ((index.len() as u32) << PREFIX_BITS),
            index: idx,
        }
    }

    fn ndim(&self) -> usize {
        (self.meta >> PREFIX_BITS) as usize
    }

    /// The interned prefix.
    pub fn prefix(&self) -> Prefix {
        Prefix(self.meta & PREFIX_MASK)
    }

    /// The prefix text (`inc`, `sum-aggregate`, …): what the dashboard groups tasks by.
    pub fn prefix_str(&self) -> &'static str {
        self.prefix().as_str()
    }

    /// The token that identifies the call or layer (its low 96 bits; the rest are zero).
    pub fn token(&self) -> Token {
        Token::from_u128(
            self.token[0] as u128
                | ((self.token[1] as u128) << 32)
                | ((self.token[2] as u128) << 64),
        )
    }

    /// The block coordinates (empty for plain task keys).
    pub fn index(&self) -> &[u32] {
        &self.index[..self.ndim()]
    }

    fn token_hex(&self) -> String {
        format!("{:024x}", self.token().as_u128())
    }

    /// A short label for pictures: `inc-3f2a91c0` or `ones-9c1d22aa (0, 1)`.
    pub fn short(&self) -> String {
        let hex = self.token_hex();
        if self.ndim() == 0 {
            format!("{}-{}", self.prefix_str(), &hex[..8])
        } else {
            let idx: Vec<String> = self.index().iter().map(|i| i.to_string()).collect();
            format!("{}-{} ({})", self.prefix_str(), &hex[..8], idx.join(", "))
        }
    }

    /// A well-mixed 64-bit hash of the key (what `Hash` writes; dense tables use it directly).
    #[inline]
    pub fn hash64(&self) -> u64 {
        let lo = self.token[0] as u64 | ((self.token[1] as u64) << 32);
        let mut h = lo ^ (self.token[2] as u64).rotate_left(29) ^ ((self.meta as u64) << 40);
        for &i in self.index() {
            h = (h ^ i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        h ^ (h >> 31)
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token && self.meta == other.meta && self.index() == other.index()
    }
}

impl Eq for Key {}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash64());
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
        if self.ndim() == 0 {
            write!(f, "{}-{}", self.prefix_str(), self.token_hex())
        } else {
            write!(f, "('{}-{}'", self.prefix_str(), self.token_hex())?;
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
#[error("`{text}` is not a task key: {reason} (expected `name-<24 hex digits>` or `('name-<24 hex digits>', 0, 1)`)")]
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
        if hex.len() != 24 {
            return Err(err("the token is not 24 hex digits"));
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
        assert_eq!(std::mem::size_of::<Key>(), 32);
    }

    #[test]
    fn known_finds_interned_prefixes_and_adds_none() {
        let before = Prefix::interned();
        assert_eq!(Prefix::known("never-interned-by-anyone-7f3a"), None);
        assert!(Prefix::interned() >= before);
        let p = Prefix::intern("interned-for-known-7f3a");
        assert_eq!(Prefix::known("interned-for-known-7f3a"), Some(p));
        // From another thread, whose local copy of the table is cold.
        let q = std::thread::spawn(|| Prefix::known("interned-for-known-7f3a"))
            .join()
            .unwrap();
        assert_eq!(q, Some(p));
        assert_eq!(
            std::thread::spawn(|| Prefix::known("never-interned-by-anyone-7f3a"))
                .join()
                .unwrap(),
            None
        );
    }

    #[test]
    fn display_round_trips() {
        for k in [
            Key::new("inc", Token::from_u128(u128::MAX >> 32)),
            Key::new("sum-aggregate", Token::from_u128(12)),
            Key::block("ones", Token::from_u128(99), &[1, 2, 3, 4]),
        ] {
            assert_eq!(k.to_string().parse::<Key>().unwrap(), k);
        }
        assert!("nonsense".parse::<Key>().is_err());
        assert!("x-12".parse::<Key>().is_err());
    }

    #[test]
    #[should_panic(expected = "at most 4 block coordinates")]
    fn too_many_dimensions_is_refused() {
        let _ = Key::block("x", Token::from_u128(1), &[0; 5]);
    }
}
