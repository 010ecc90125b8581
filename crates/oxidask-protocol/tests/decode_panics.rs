//! A codec that panics on some peer's input fails that input — the frame, and so that
//! connection, or that value — and never the thread or the task that serves everyone else.

use bytes::Bytes;
use oxidask_core::codec::{CodecError, Reader, Writer};
use oxidask_core::Data;
use oxidask_protocol::frame::{decode_batch, decode_detached, encode_batch};
use oxidask_protocol::{read_frame, write_frame, Limits, Payload, ProtocolError, WireValue};

/// Decodes one byte, and panics (a codec bug) on the byte 0xEE.
#[derive(Clone, Debug, PartialEq)]
struct Panicky(u8);

impl Data for Panicky {
    fn encode(&self, w: &mut Writer<'_>) {
        w.put_u8(self.0);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let b = r.get_u8("panicky")?;
        if b == 0xEE {
            panic!("a codec bug triggered by byte 0xEE");
        }
        Ok(Panicky(b))
    }
}

/// A message with a payload part next to a panicky byte.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
struct WithPart {
    part: Payload,
    then: Panicky,
}

#[test]
fn regression_a_panicking_decoder_fails_the_frame_not_the_thread() {
    let (header, parts) = encode_batch(&[WithPart {
        part: Payload(Bytes::from_static(b"part")),
        then: Panicky(0xEE),
    }]);
    assert_eq!(parts.len(), 1);
    let caught = oxidask_protocol::frame::decode_panics_caught();
    let e = decode_batch::<WithPart>(&header, parts).unwrap_err();
    assert!(matches!(e, ProtocolError::Decode(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("decoder panicked (a codec bug triggered by byte 0xEE")
            && msg.contains("please report it"),
        "{msg}"
    );
    assert_eq!(oxidask_protocol::frame::decode_panics_caught(), caught + 1);
    // The thread goes on decoding, and the panicked frame's parts did not stay behind.
    let (header, parts) = encode_batch(&[WithPart {
        part: Payload(Bytes::from_static(b"ok")),
        then: Panicky(1),
    }]);
    let back = decode_batch::<WithPart>(&header, parts).unwrap();
    assert_eq!(back[0].part.0, Bytes::from_static(b"ok"));
    let (header, _) = encode_batch(&[WithPart {
        part: Payload(Bytes::from_static(b"x")),
        then: Panicky(2),
    }]);
    let e = decode_batch::<WithPart>(&header, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("not in the frame"), "{e}");
}

#[test]
fn regression_a_panicking_decoder_of_a_detached_payload_or_a_value_is_an_error() {
    let e = decode_detached::<Panicky>(&Payload(Bytes::from_static(&[0xEE]))).unwrap_err();
    assert!(e.to_string().contains("decoder panicked"), "{e}");
    oxidask_core::codecs::register::<Panicky>();
    let value = WireValue {
        type_name: std::any::type_name::<Panicky>().to_owned(),
        bytes: Payload(Bytes::from_static(&[0xEE])),
        buffers: Vec::new(),
    };
    let e = value.to_value().unwrap_err();
    assert!(e.message.contains("decoder panicked"), "{}", e.message);
    let fine = WireValue {
        bytes: Payload(Bytes::from_static(&[3])),
        ..value
    };
    assert_eq!(
        fine.to_value().unwrap().downcast_ref::<Panicky>(),
        Some(&Panicky(3))
    );
}

#[test]
fn regression_a_connection_whose_frame_panics_the_decoder_ends_and_the_next_is_served() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A server that reads frames of `Panicky` from each connection, one task each.
        let server = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let conn = tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(m) = read_frame::<_, Panicky>(&mut s, &Limits::default()).await?
                    {
                        got.extend(m);
                    }
                    Ok::<_, ProtocolError>(got)
                });
                outcomes.push(conn.await);
            }
            outcomes
        });
        for msgs in [
            vec![Panicky(1), Panicky(0xEE)],
            vec![Panicky(5), Panicky(6)],
        ] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            write_frame(&mut s, &msgs).await.unwrap();
            drop(s);
        }
        let outcomes = server.await.unwrap();
        let first = outcomes[0]
            .as_ref()
            .expect("the connection task did not panic");
        assert!(first
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("decoder panicked"));
        let second = outcomes[1]
            .as_ref()
            .expect("the next connection was served");
        assert_eq!(second.as_ref().unwrap(), &vec![Panicky(5), Panicky(6)]);
    });
}
