//! Garbage, truncated and oversized frames are errors, never panics or huge allocations.

use oxidask_protocol::*;
use proptest::prelude::*;

fn read<M: oxidask_core::Data>(bytes: &[u8]) -> Result<Option<Vec<M>>, ProtocolError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let limits = Limits {
        max_header: 1 << 20,
        max_parts: 64,
        max_payload: 1 << 20,
    };
    rt.block_on(async {
        let mut rd = bytes;
        read_frame::<_, M>(&mut rd, &limits).await
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = read::<ToScheduler>(&bytes);
        let _ = read::<FromWorker>(&bytes);
        let _ = read::<ToWorker>(&bytes);
        let _ = read::<DataRequest>(&bytes);
        let _ = read::<Hello>(&bytes);
    }

    #[test]
    fn valid_frames_with_corrupted_bytes_never_panic(flip in 0usize..200, value in any::<u8>()) {
        let msg = ToScheduler::UpdateGraph {
            tasks: vec![WireTask::new(
                WireKey(oxidask_core::Key::block("inc", oxidask_core::Token::from_u128(7), &[1, 2])),
                &WireSpec::Call { op: "m::inc".into(), args: vec![WireArg::Value(WireValue {
                    type_name: "i64".into(),
                    bytes: Payload(bytes::Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0])),
                    buffers: Vec::new(),
                })] },
                vec![],
            )],
            wanted: vec![],
            options: SubmitOptions::default(),
            more: false,
        };
        let mut buf = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(write_frame(&mut buf, std::slice::from_ref(&msg))).unwrap();
        prop_assert_eq!(read::<ToScheduler>(&buf).unwrap().unwrap(), vec![msg]);
        let i = flip % buf.len();
        buf[i] = value;
        let _ = read::<ToScheduler>(&buf);
        let _ = read::<ToScheduler>(&buf[..i]);
    }
}
