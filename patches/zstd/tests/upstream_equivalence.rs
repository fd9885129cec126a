//! The stand-in against crates.io's zstd 0.13.5: each reads the other's frames, and on
//! damaged, truncated, concatenated, skippable and size-less input both give the same bytes
//! or both fail.

use std::io::Write;

fn sample(len: usize, seed: u64) -> Vec<u8> {
    // Half text-like (compressible), half pseudo-random.
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            if (i / 4096) % 2 == 0 {
                b"the quick brown fox jumps over the lazy dog "[i % 44]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

/// A frame without a content size, as a streaming encoder (restic's Go one) may write it.
fn sizeless_frame(data: &[u8]) -> Vec<u8> {
    let mut encoder = zstd_upstream::stream::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(data).unwrap();
    let frame = encoder.finish().unwrap();
    assert!(matches!(
        zstd_upstream::zstd_safe::get_frame_content_size(&frame),
        Ok(None)
    ));
    frame
}

fn assert_same_decoding(input: &[u8], what: &str) {
    let ours = zstd::decode_all(input);
    let theirs = zstd_upstream::decode_all(input);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert!(a == b, "{what}: different bytes"),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "{what}: ours {:?}, upstream {:?}",
            ours.map(|v| v.len()),
            theirs.map(|v| v.len())
        ),
    }
}

#[test]
fn each_reads_the_others_frames_at_every_size_and_level() {
    for len in [0, 1, 44, 4096, 100_000, 1 << 20, 3 << 20] {
        let data = sample(len, len as u64);
        for level in [1, 3, 19] {
            let ours = zstd::encode_all(&data[..], level).unwrap();
            assert_eq!(
                zstd_upstream::decode_all(&ours[..]).unwrap(),
                data,
                "{len} at {level}"
            );
            let theirs = zstd_upstream::encode_all(&data[..], level).unwrap();
            assert_eq!(
                zstd::decode_all(&theirs[..]).unwrap(),
                data,
                "{len} at {level}"
            );
            // Reusing the context loses nothing in compression.
            assert!(
                ours.len() <= theirs.len() + 16,
                "{len} at {level}: {} vs {}",
                ours.len(),
                theirs.len()
            );
            let mut copied = Vec::new();
            zstd::stream::copy_encode(&data[..], &mut copied, level).unwrap();
            assert_eq!(copied, ours, "copy_encode writes what encode_all returns");
        }
    }
}

#[test]
fn frames_without_sizes_concatenated_and_skippable_decode_as_upstream() {
    let a = sample(300_000, 7);
    let b = sample(5_000, 8);
    let sizeless = sizeless_frame(&a);
    assert_eq!(zstd::decode_all(&sizeless[..]).unwrap(), a);

    let mut two = zstd::encode_all(&a[..], 3).unwrap();
    two.extend(zstd::encode_all(&b[..], 3).unwrap());
    assert_eq!(
        zstd::decode_all(&two[..]).unwrap(),
        [&a[..], &b[..]].concat()
    );
    assert_same_decoding(&two, "two sized frames");

    let mut mixed = sizeless.clone();
    mixed.extend(zstd::encode_all(&b[..], 3).unwrap());
    assert_same_decoding(&mixed, "sizeless then sized");

    let mut skippable = 0x184D_2A50u32.to_le_bytes().to_vec();
    skippable.extend(5u32.to_le_bytes());
    skippable.extend(b"12345");
    skippable.extend(zstd::encode_all(&b[..], 3).unwrap());
    assert_eq!(zstd::decode_all(&skippable[..]).unwrap(), b);
    assert_same_decoding(&skippable, "skippable frame first");
}

#[test]
fn truncated_damaged_and_garbage_input_fail_as_upstream_and_leave_the_context_usable() {
    let data = sample(200_000, 3);
    for frame in [
        zstd::encode_all(&data[..], 3).unwrap(),
        sizeless_frame(&data),
    ] {
        for cut in [1, 4, 5, 9, 100, frame.len() / 2, frame.len() - 1] {
            assert!(
                zstd::decode_all(&frame[..cut]).is_err(),
                "cut at {cut} must fail"
            );
            assert_same_decoding(&frame[..cut], &format!("cut at {cut}"));
        }
        for at in [6, 20, frame.len() / 3, frame.len() - 3] {
            let mut damaged = frame.clone();
            damaged[at] ^= 0x55;
            assert_same_decoding(&damaged, &format!("byte {at} flipped"));
        }
        let mut trailing = frame.clone();
        trailing.extend(b"not a frame");
        assert_same_decoding(&trailing, "garbage after a frame");
        // After all those failures the thread's context still decodes.
        assert_eq!(zstd::decode_all(&frame[..]).unwrap(), data);
    }
    assert_same_decoding(b"", "empty input");
    assert_same_decoding(&sample(10_000, 9), "not zstd at all");
}

#[test]
fn the_bulk_decompressor_replaces_its_buffer_and_the_levels_match_upstream() {
    let data = sample(500_000, 11);
    let frame = zstd::encode_all(&data[..], 3).unwrap();
    let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
    let mut out = b"left over".to_vec();
    out.reserve(data.len());
    assert_eq!(
        decompressor.decompress_to_buffer(&frame, &mut out).unwrap(),
        data.len()
    );
    assert_eq!(out, data);
    out.clear();
    out.shrink_to(10);
    assert!(
        decompressor.decompress_to_buffer(&frame, &mut out).is_err(),
        "no room: an error"
    );
    assert_eq!(
        zstd::compression_level_range(),
        zstd_upstream::compression_level_range()
    );
}

#[test]
fn compress_to_buffer_writes_frames_upstream_reads_and_fails_without_room() {
    for (len, level) in [(0, 3), (1, 1), (4096, 3), (300_000, 3), (1 << 20, 9)] {
        let data = sample(len, len as u64 + 5);
        let bound = zstd::zstd_safe::compress_bound(len);
        assert_eq!(bound, zstd_upstream::zstd_safe::compress_bound(len));
        // Leftover bytes in the buffer must not leak into the frame.
        let mut out = vec![0xa5u8; bound + 7];
        let n = zstd::bulk::compress_to_buffer(&data, &mut out, level).unwrap();
        assert_eq!(
            zstd_upstream::decode_all(&out[..n]).unwrap(),
            data,
            "{len} B at {level}"
        );
        let theirs = zstd_upstream::bulk::compress(&data, level).unwrap();
        assert_eq!(n, theirs.len(), "same frame size as upstream's bulk API");
        let ours = zstd::bulk::compress(&data, level).unwrap();
        assert_eq!(ours, out[..n], "bulk::compress writes the same frame");
    }
    let data = sample(100_000, 3);
    let mut small = vec![0u8; 100];
    assert!(zstd::bulk::compress_to_buffer(&data, &mut small, 3).is_err());
    // The thread's context still works after the failure.
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(data.len())];
    let n = zstd::bulk::compress_to_buffer(&data, &mut out, 3).unwrap();
    assert_eq!(zstd::decode_all(&out[..n]).unwrap(), data);
}
