//! What the time index costs a job's writes: a mark (two clock reads and a
//! 32-byte `pwrite`) against the write it stands for (a small `pwrite` of
//! output into the output file), in the same process, alternating rounds.
//!
//!     cargo bench -p tasker-shim --bench timeindex
//!
//! The worst case: every write a mark (streams in turn). In practice a mark
//! is written at most once a millisecond per stream, or when the stream
//! changes, so most writes cost nothing more.

use std::os::unix::fs::FileExt as _;
use std::time::Instant;

use tasker_shim::timeindex::{IndexWriter, Stream};

const N: u64 = 1_000_000;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rows = Vec::new();
    for round in 0..5 {
        // The write a mark stands for: 64 bytes of output, appended.
        let out = std::fs::File::create(dir.path().join(format!("out{round}"))).unwrap();
        let line = [b'x'; 64];
        let t0 = Instant::now();
        for i in 0..N {
            out.write_all_at(&line, i * 64).unwrap();
        }
        let write = t0.elapsed();
        // A mark for each (streams in turn, so none is skipped).
        let path = dir.path().join(format!("idx{round}"));
        let mut index = IndexWriter::new(Box::new(move || std::fs::File::create(path)), 256 << 20);
        let t0 = Instant::now();
        for i in 0..N {
            index.note(i * 64, if i % 2 == 0 { Stream::Out } else { Stream::Err });
        }
        let mark = t0.elapsed();
        assert!(index.failed().is_none());
        // A write within a grain of the last mark: only the clock reads.
        let path = dir.path().join(format!("same{round}"));
        let mut index = IndexWriter::new(Box::new(move || std::fs::File::create(path)), 256 << 20);
        let t0 = Instant::now();
        for i in 0..N {
            index.note(i * 64, Stream::Out);
        }
        let skipped = t0.elapsed();
        rows.push((round, write, mark, skipped));
        let _ = std::fs::remove_file(dir.path().join(format!("out{round}")));
    }
    let ns = |d: std::time::Duration| d.as_secs_f64() * 1e9 / N as f64;
    println!("## Time index (`cargo bench -p tasker-shim --bench timeindex`)\n");
    println!("{N} writes of 64 bytes of output, and {N} marks, per round.\n");
    println!(
        "| round | a 64-byte write of output | a mark (every write, streams in turn) | mark / write | a write within a grain (no mark) |"
    );
    println!("|---|---|---|---|---|");
    let mut shares = Vec::new();
    for (round, write, mark, skipped) in &rows {
        let share = ns(*mark) / ns(*write);
        shares.push(share);
        println!(
            "| {round} | {:.0} ns | {:.0} ns | {:.0}% | {:.0} ns |",
            ns(*write),
            ns(*mark),
            share * 100.0,
            ns(*skipped)
        );
    }
    shares.sort_by(f64::total_cmp);
    println!(
        "\nMedian: a mark costs **{:.0}%** of the small write it stands for; a write that needs no mark, two clock reads.\n",
        shares[shares.len() / 2] * 100.0
    );
}
