//! Values before and after they meet their key: a [`Raw`] is what a file, a variable, a call
//! or a flag wrote; a [`Value`] is what the key's [`Kind`] made of it.

use std::fmt;
use std::time::Duration;

use crate::error::Reason;
use crate::schema::{KeySpec, Kind};
use crate::units;

/// A value as written, before it is checked against its key: what a YAML scalar, an
/// environment variable, [`set`](crate::set) or a flag gives. Numbers and booleans may also
/// come as text (`"0.6"`, `"true"`): each key reads text the way its kind needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// `null` (also `~`, `none` and an empty value): "unset" for the keys that allow it.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction or an exponent (possibly NaN or infinite, which every key
    /// refuses).
    Float(f64),
    /// Text: a size (`4GiB`), a duration (`30s`), a path, a choice, or a number as text.
    Str(String),
    /// A duration given in code.
    Duration(Duration),
}

impl Raw {
    /// Reads `text` as a YAML scalar, as environment variables are read: `0.6` is a number,
    /// `true` a boolean, `null`, `~`, `none` and the empty text are null; anything else
    /// (`30s`, `{scheme}://{host}`) is a string.
    pub fn parse_scalar(text: &str) -> Raw {
        if text.trim().eq_ignore_ascii_case("none") {
            return Raw::Null;
        }
        match serde_norway::from_str::<serde_norway::Value>(text) {
            Ok(v) => Raw::from_yaml(&v).unwrap_or_else(|_| Raw::Str(text.to_owned())),
            Err(_) => Raw::Str(text.to_owned()),
        }
    }

    /// The scalar a YAML value holds, or what it is instead ("a list", "a mapping").
    pub(crate) fn from_yaml(v: &serde_norway::Value) -> Result<Raw, &'static str> {
        use serde_norway::Value as Y;
        match v {
            Y::Null => Ok(Raw::Null),
            Y::Bool(b) => Ok(Raw::Bool(*b)),
            Y::Number(n) => Ok(match n.as_i64() {
                Some(i) => Raw::Int(i),
                None => Raw::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Y::String(s) => Ok(Raw::Str(s.clone())),
            Y::Sequence(_) => Err("a list"),
            Y::Mapping(_) => Err("a mapping"),
            Y::Tagged(_) => Err("a tagged value"),
        }
    }

    /// What kind of thing this is, for "is a string" messages.
    fn type_name(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(true) => "true",
            Raw::Bool(false) => "false",
            Raw::Int(_) => "a whole number",
            Raw::Float(_) => "a number",
            Raw::Str(_) => "a string",
            Raw::Duration(_) => "a duration",
        }
    }
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Null => f.write_str("null"),
            Raw::Bool(b) => write!(f, "{b}"),
            Raw::Int(i) => write!(f, "{i}"),
            Raw::Float(x) if x.is_nan() => f.write_str(".nan"),
            Raw::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { ".inf" } else { "-.inf" })
            }
            Raw::Float(x) => write!(f, "{x:?}"),
            Raw::Str(s) => f.write_str(&quote(s)),
            Raw::Duration(d) => f.write_str(&units::format_duration(*d)),
        }
    }
}

macro_rules! raw_from {
    ($($t:ty => $v:ident($conv:expr)),* $(,)?) => {$(
        impl From<$t> for Raw {
            fn from(x: $t) -> Raw {
                #[allow(clippy::redundant_closure_call)]
                Raw::$v(($conv)(x))
            }
        }
    )*};
}

raw_from! {
    bool => Bool(|x| x),
    i8 => Int(i64::from),
    i16 => Int(i64::from),
    i32 => Int(i64::from),
    i64 => Int(|x| x),
    u8 => Int(i64::from),
    u16 => Int(i64::from),
    u32 => Int(i64::from),
    f32 => Float(f64::from),
    f64 => Float(|x| x),
    &str => Str(str::to_owned),
    String => Str(|x| x),
    &String => Str(String::clone),
    Duration => Duration(|x| x),
}

impl From<u64> for Raw {
    /// Beyond `i64::MAX` a `u64` becomes a (rounded) float.
    fn from(x: u64) -> Raw {
        i64::try_from(x).map_or(Raw::Float(x as f64), Raw::Int)
    }
}

impl From<usize> for Raw {
    fn from(x: usize) -> Raw {
        Raw::from(x as u64)
    }
}

impl<T: Into<Raw>> From<Option<T>> for Raw {
    /// `None` is null.
    fn from(x: Option<T>) -> Raw {
        x.map_or(Raw::Null, Into::into)
    }
}

/// A checked value, as its key's [`Kind`] reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Null: unset, "none" or "automatic", as the key's documentation says.
    Null,
    /// `false` given to a key that takes it to mean "off" (the memory thresholds,
    /// `max-spill`).
    Off,
    /// A boolean.
    Bool(bool),
    /// A whole number within the key's range.
    Int(i64),
    /// A fraction from 0 to 1.
    Fraction(f64),
    /// A size in bytes.
    Size(u64),
    /// A duration.
    Duration(Duration),
    /// A string, a path, or a choice (spelled as the schema spells it).
    Str(String),
}

impl fmt::Display for Value {
    /// As YAML that reads back to the same value (`0.6`, `128MiB`, `30s`, `null`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Off => f.write_str("false"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Fraction(x) => write!(f, "{x}"),
            Value::Size(b) => f.write_str(&units::format_size(*b)),
            Value::Duration(d) => f.write_str(&units::format_duration(*d)),
            Value::Str(s) => f.write_str(&quote(s)),
        }
    }
}

/// `s` as a YAML scalar that reads back as this string: bare when it can be, else in double
/// quotes.
pub(crate) fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.trim() == s
        && !s.contains([
            ':', '#', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
            '\\', '\n', '\t',
        ])
        && !s.starts_with(['-', '?'])
        && matches!(Raw::parse_scalar(s), Raw::Str(ref t) if t == s);
    if plain {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Checks `raw` against `spec`, giving the value its key holds.
pub(crate) fn check(spec: &KeySpec, raw: &Raw) -> Result<Value, Reason> {
    let wrong = || Reason::WrongType {
        found: raw.type_name(),
    };
    match raw {
        Raw::Null if spec.nullable => return Ok(Value::Null),
        Raw::Null => return Err(wrong()),
        Raw::Bool(false) if spec.off => return Ok(Value::Off),
        Raw::Str(s) if spec.off && s.trim().eq_ignore_ascii_case("false") => return Ok(Value::Off),
        Raw::Str(s)
            if spec.nullable
                && !matches!(spec.kind, Kind::Str | Kind::Path)
                && ["null", "none", "~"].contains(&s.trim().to_ascii_lowercase().as_str()) =>
        {
            return Ok(Value::Null)
        }
        _ => {}
    }
    match spec.kind {
        Kind::Fraction => {
            let x = match raw {
                Raw::Int(i) => *i as f64,
                Raw::Float(x) => *x,
                Raw::Str(s) => s.trim().parse::<f64>().map_err(|_| Reason::NotANumber)?,
                _ => return Err(wrong()),
            };
            if !x.is_finite() {
                Err(Reason::NotFinite)
            } else if (0.0..=1.0).contains(&x) {
                Ok(Value::Fraction(x))
            } else {
                Err(Reason::OutOfRange)
            }
        }
        Kind::Int { min, max } => {
            let i = match raw {
                Raw::Int(i) => *i,
                Raw::Float(x) => whole(*x)?,
                Raw::Str(s) => match s.trim().parse::<i64>() {
                    Ok(i) => i,
                    Err(_) => whole(s.trim().parse::<f64>().map_err(|_| Reason::NotANumber)?)?,
                },
                _ => return Err(wrong()),
            };
            if i < 0 && min >= 0 {
                Err(Reason::Negative)
            } else if i < min || i > max {
                Err(Reason::OutOfRange)
            } else {
                Ok(Value::Int(i))
            }
        }
        Kind::Bool => match raw {
            Raw::Bool(b) => Ok(Value::Bool(*b)),
            Raw::Str(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Raw::Str(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        Kind::Size => match raw {
            Raw::Int(i) if *i < 0 => Err(Reason::Negative),
            Raw::Int(i) => Ok(Value::Size(*i as u64)),
            Raw::Float(x) => units::bytes_of(*x).map(Value::Size),
            Raw::Str(s) => units::parse_size(s).map(Value::Size),
            _ => Err(wrong()),
        },
        Kind::Duration => match raw {
            Raw::Int(i) if *i < 0 => Err(Reason::Negative),
            Raw::Int(i) => Ok(Value::Duration(Duration::from_secs(*i as u64))),
            Raw::Float(x) => units::duration_of_secs(*x).map(Value::Duration),
            Raw::Str(s) => units::parse_duration(s).map(Value::Duration),
            Raw::Duration(d) => Ok(Value::Duration(*d)),
            _ => Err(wrong()),
        },
        Kind::Str | Kind::Path => match raw {
            Raw::Str(s) if s.is_empty() && spec.kind == Kind::Path => Err(Reason::Empty),
            Raw::Str(s) => Ok(Value::Str(s.clone())),
            // An all-digit token or file name reads as a number in YAML.
            Raw::Int(_) | Raw::Float(_) => Ok(Value::Str(raw.to_string())),
            _ => Err(wrong()),
        },
        Kind::Choice(choices) => {
            let written = match raw {
                Raw::Str(s) => s.trim().to_ascii_lowercase(),
                // `min-version: 1.2` is a number in YAML.
                Raw::Int(_) | Raw::Float(_) => raw.to_string(),
                _ => return Err(wrong()),
            };
            choices
                .iter()
                .find(|(name, _)| *name == written)
                .map(|(_, canonical)| Value::Str((*canonical).to_owned()))
                .ok_or(Reason::NotAChoice)
        }
    }
}

/// `x` as a whole number, if it is one.
fn whole(x: f64) -> Result<i64, Reason> {
    if !x.is_finite() {
        Err(Reason::NotFinite)
    } else if x.fract() != 0.0 {
        Err(Reason::WrongType {
            found: "a number with a fraction",
        })
    } else if x < i64::MIN as f64 || x >= i64::MAX as f64 {
        Err(Reason::OutOfRange)
    } else {
        Ok(x as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_as_yaml() {
        assert_eq!(Raw::parse_scalar("0.6"), Raw::Float(0.6));
        assert_eq!(Raw::parse_scalar("3"), Raw::Int(3));
        assert_eq!(Raw::parse_scalar("true"), Raw::Bool(true));
        assert_eq!(Raw::parse_scalar("True"), Raw::Bool(true));
        assert_eq!(Raw::parse_scalar("null"), Raw::Null);
        assert_eq!(Raw::parse_scalar("~"), Raw::Null);
        assert_eq!(Raw::parse_scalar(""), Raw::Null);
        assert_eq!(Raw::parse_scalar("None"), Raw::Null);
        assert_eq!(Raw::parse_scalar("30s"), Raw::Str("30s".into()));
        assert_eq!(Raw::parse_scalar("'0.6'"), Raw::Str("0.6".into()));
        assert_eq!(
            Raw::parse_scalar("{scheme}://{host}:{port}/status"),
            Raw::Str("{scheme}://{host}:{port}/status".into())
        );
        assert_eq!(Raw::parse_scalar("[1, 2]"), Raw::Str("[1, 2]".into()));
        assert!(matches!(Raw::parse_scalar(".nan"), Raw::Float(x) if x.is_nan()));
    }

    #[test]
    fn strings_print_bare_only_when_they_read_back() {
        for s in [
            "threads",
            "{scheme}://{host}:{port}/status",
            "0.6",
            "true",
            "null",
            "",
            " x",
            "a \"quoted\" \\ word",
            "/etc/ssl/ca.pem",
            "- dash",
            "line\nbreak",
        ] {
            let q = quote(s);
            assert_eq!(
                Raw::parse_scalar(&q),
                Raw::Str(s.to_owned()),
                "{s:?} as {q}"
            );
        }
        assert_eq!(quote("threads"), "threads");
        assert_eq!(quote("/etc/ssl/ca.pem"), "/etc/ssl/ca.pem");
    }
}
