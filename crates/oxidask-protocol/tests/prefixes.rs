//! Key prefixes arriving from the wire are interned for the life of the process, so what a
//! peer may add is limited per connection: a peer flooding distinct prefixes is cut off
//! without filling the table for everyone, and data ports add none.

use oxidask_core::{Key, Prefix, Token};
use oxidask_protocol::frame::decode_batch_admitting;
use oxidask_protocol::wire::{PrefixAdmission, MAX_NEW_PREFIXES_PER_CONNECTION};
use oxidask_protocol::{ProtocolError, WireKey};

/// A batch of keys encoded by hand, so the prefixes are not interned by encoding them.
fn keys_frame(prefixes: impl Iterator<Item = String>) -> Vec<u8> {
    let prefixes: Vec<String> = prefixes.collect();
    let mut out = Vec::new();
    let mut w = oxidask_core::codec::Writer::new(&mut out);
    w.put_len(prefixes.len());
    for p in &prefixes {
        w.put_len(p.len());
        w.put_bytes(p.as_bytes());
        w.put_bytes(&[7u8; 12]);
        w.put_u8(0);
    }
    out
}

#[test]
fn regression_a_peer_sending_a_million_distinct_prefixes_is_cut_off_at_its_budget() {
    let before = Prefix::interned();
    let mut flood = PrefixAdmission::per_connection();
    let per_frame = 10_000;
    let mut accepted = 0usize;
    let mut error = None;
    for frame in 0..100 {
        // A million prefixes in all, if the connection were never cut off.
        let header = keys_frame((0..per_frame).map(|i| format!("flood-{frame}-{i}")));
        match decode_batch_admitting::<WireKey>(&header, Vec::new(), &mut flood) {
            Ok(keys) => accepted += keys.len(),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let e = error.expect("the flood is refused");
    assert_eq!(
        accepted,
        MAX_NEW_PREFIXES_PER_CONNECTION / per_frame * per_frame,
        "whole frames within the budget decode"
    );
    assert_eq!(flood.remaining(), 0);
    let msg = e.to_string();
    assert!(matches!(e, ProtocolError::Decode(_)), "{msg}");
    assert!(
        msg.contains("more than 65536 distinct key prefixes")
            && msg.contains("token or block index"),
        "{msg}"
    );
    // The table grew by the budget, not by a million (the other tests here intern ~100).
    let grown = Prefix::interned() - before;
    assert!(
        (MAX_NEW_PREFIXES_PER_CONNECTION..MAX_NEW_PREFIXES_PER_CONNECTION + 1_000).contains(&grown),
        "the table grew by {grown}"
    );
    // The flooding connection still names keys it already introduced …
    let again = keys_frame(std::iter::once("flood-0-1".to_owned()));
    assert!(decode_batch_admitting::<WireKey>(&again, Vec::new(), &mut flood).is_ok());
    // … and another connection adds a new, legitimate prefix.
    let mut legit = PrefixAdmission::per_connection();
    let frame = keys_frame(std::iter::once("legit-after-the-flood".to_owned()));
    let keys = decode_batch_admitting::<WireKey>(&frame, Vec::new(), &mut legit).unwrap();
    assert_eq!(keys[0].0.prefix_str(), "legit-after-the-flood");
    assert_eq!(legit.remaining(), MAX_NEW_PREFIXES_PER_CONNECTION - 1);
}

#[test]
fn regression_a_data_port_peer_cannot_add_prefixes() {
    let known = Key::new("held-here", Token::from_u128(1));
    let mut peer = PrefixAdmission::known_only();
    let frame = keys_frame(["held-here".to_owned()].into_iter());
    let keys = decode_batch_admitting::<WireKey>(&frame, Vec::new(), &mut peer).unwrap();
    assert_eq!(keys[0].0.prefix(), known.prefix());
    let frame = keys_frame(["never-held-by-this-worker".to_owned()].into_iter());
    let e = decode_batch_admitting::<WireKey>(&frame, Vec::new(), &mut peer).unwrap_err();
    assert!(
        e.to_string()
            .contains("names no key this process has ever held"),
        "{e}"
    );
    // Not interned (the table's size cannot tell: the flood test runs alongside).
    assert_eq!(Prefix::known("never-held-by-this-worker"), None);
}

#[test]
fn decoding_without_an_admission_is_limited_by_the_table_only() {
    let frame = keys_frame((0..100).map(|i| format!("unscoped-{i}")));
    let keys = oxidask_protocol::frame::decode_batch::<WireKey>(&frame, Vec::new()).unwrap();
    assert_eq!(keys.len(), 100);
    // And an admission used on this thread before does not leak into later decodes.
    let mut none = PrefixAdmission::known_only();
    let _ = decode_batch_admitting::<WireKey>(
        &keys_frame(std::iter::once("refused-here".to_owned())),
        Vec::new(),
        &mut none,
    );
    let frame = keys_frame(std::iter::once("admitted-after".to_owned()));
    assert!(oxidask_protocol::frame::decode_batch::<WireKey>(&frame, Vec::new()).is_ok());
}
