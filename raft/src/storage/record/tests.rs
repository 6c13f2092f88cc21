//! Unit and property tests of the record codec and the segment scan.

use super::*;
use crate::storage::scan::{scan_segment, ScanEnd, TornReason};
use proptest::prelude::*;

const MAX: u32 = DEFAULT_MAX_RECORD_BYTES;

fn arb_record() -> impl Strategy<Value = WalRecord> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(index, term, noop, data)| {
                WalRecord::Entry(Entry {
                    index: LogIndex(index),
                    term: Term(term),
                    kind: if noop {
                        EntryKind::Noop
                    } else {
                        EntryKind::Normal
                    },
                    data: Bytes::from(data),
                })
            }),
        (any::<u64>(), any::<u64>(), any::<Option<u64>>()).prop_map(|(term, commit, vote)| {
            WalRecord::HardState(HardState {
                term: Term(term),
                vote: vote.map(NodeId),
                commit: LogIndex(commit),
            })
        }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(index, term, log_kept)| {
            WalRecord::SnapshotMarker(SnapshotMarker {
                meta: SnapshotMeta {
                    index: LogIndex(index),
                    term: Term(term),
                },
                log_kept,
            })
        }),
        any::<u64>().prop_map(|offset| WalRecord::SyncedUpTo { offset }),
    ]
}

fn encode_all(records: &[WalRecord]) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for record in records {
        encode_record(record, MAX, &mut buf).unwrap();
        ends.push(buf.len());
    }
    (buf, ends)
}

fn decoded_records(buf: &[u8]) -> Vec<WalRecord> {
    RecordDecoder::new(buf, MAX)
        .filter_map(|d| match d {
            Decoded::Record { record, .. } => Some(record),
            _ => None,
        })
        .collect()
}

#[test]
fn all_zero_header_is_not_a_record() {
    let decoded: Vec<_> = RecordDecoder::new(&[0u8; 40], MAX).collect();
    assert_eq!(
        decoded,
        vec![Decoded::Corrupt {
            offset: 0,
            reason: CorruptReason::BadLengthChecksum,
            next_offset: None
        }]
    );
}

#[test]
fn synced_up_to_has_its_fixed_size_and_a_wrong_size_is_corrupt() {
    let mut buf = Vec::new();
    encode_record(&WalRecord::SyncedUpTo { offset: 7 }, MAX, &mut buf).unwrap();
    assert_eq!(buf.len(), SYNCED_UP_TO_RECORD_BYTES);
    assert_eq!(buf[..], encode_synced_up_to(7)[..]);
    let mut short = Vec::new();
    encode_body(KIND_SYNCED_UP_TO, MAX, &mut short, |b| {
        b.extend_from_slice(&[1; 7])
    })
    .unwrap();
    assert!(matches!(
        RecordDecoder::new(&short, MAX).next().unwrap(),
        Decoded::Corrupt {
            reason: CorruptReason::BadPayload(_),
            ..
        }
    ));
}

#[test]
fn oversized_entry_is_refused_and_leaves_output_unchanged() {
    let entry = Entry {
        data: Bytes::from(vec![0u8; 100]),
        ..Entry::default()
    };
    let mut out = vec![7u8];
    let err = encode_entry(&entry, 50, &mut out).unwrap_err();
    assert_eq!(err.len, 100 + ENTRY_BODY_OVERHEAD_BYTES);
    assert_eq!(out, vec![7u8]);
}

#[test]
fn length_over_limit_is_corrupt_without_reading_the_body() {
    let entry = Entry {
        data: Bytes::from(vec![1u8; 100]),
        ..Entry::default()
    };
    let mut buf = Vec::new();
    encode_entry(&entry, MAX, &mut buf).unwrap();
    let first = RecordDecoder::new(&buf, 10).next().unwrap();
    assert!(matches!(
        first,
        Decoded::Corrupt {
            reason: CorruptReason::TooLong { max: 10, .. },
            ..
        }
    ));
}

#[test]
fn encoded_entry_bytes_matches_encoding() {
    let entry = Entry {
        data: Bytes::from_static(b"hello"),
        ..Entry::default()
    };
    let mut buf = Vec::new();
    encode_entry(&entry, MAX, &mut buf).unwrap();
    assert_eq!(buf.len(), encoded_entry_bytes(&entry));
}

#[test]
fn unknown_kind_with_valid_checksums_is_corrupt() {
    let mut buf = Vec::new();
    encode_body(9, MAX, &mut buf, |b| b.push(1)).unwrap();
    let first = RecordDecoder::new(&buf, MAX).next().unwrap();
    assert!(matches!(
        first,
        Decoded::Corrupt {
            reason: CorruptReason::UnknownKind(9),
            ..
        }
    ));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = RecordDecoder::new(&bytes, MAX).count();
        let _ = RecordDecoder::new(&bytes, 16).count();
        let _ = scan_segment(&bytes, MAX);
        let _ = scan_segment(&bytes, 3);
    }

    #[test]
    fn arbitrary_bytes_after_valid_records_never_panic(
        records in proptest::collection::vec(arb_record(), 0..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let (mut buf, _) = encode_all(&records);
        buf.extend_from_slice(&garbage);
        let scan = scan_segment(&buf, MAX);
        prop_assert!(scan.records.len() >= records.len());
    }

    #[test]
    fn encode_then_decode_round_trips(records in proptest::collection::vec(arb_record(), 0..8)) {
        let (buf, _) = encode_all(&records);
        prop_assert_eq!(decoded_records(&buf), records.clone());
        let scan = scan_segment(&buf, MAX);
        prop_assert_eq!(scan.end, ScanEnd::Clean);
        prop_assert_eq!(scan.records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), records);
    }

    #[test]
    fn every_truncation_decodes_a_prefix_then_a_torn_tail(
        records in proptest::collection::vec(arb_record(), 1..6),
    ) {
        let (buf, ends) = encode_all(&records);
        for cut in 0..=buf.len() {
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            let scan = scan_segment(&buf[..cut], MAX);
            let got: Vec<_> = scan.records.iter().map(|(_, r)| r.clone()).collect();
            prop_assert_eq!(&got[..], &records[..complete]);
            let boundary = if complete == 0 { 0 } else { ends[complete - 1] };
            if boundary == cut {
                prop_assert_eq!(scan.end, ScanEnd::Clean);
            } else {
                prop_assert_eq!(
                    scan.end,
                    ScanEnd::TornTail { offset: boundary as u64, reason: TornReason::Incomplete }
                );
            }
        }
    }
}
