//! Digest throughput on 16 MiB: the hardware bound under every push (SHA-256 as bytes
//! stream in, spec §5.1) and under the package indexer's extra checksums (SHA-512, SHA-1,
//! MD5; docs/architecture.md, "engine/"). A push cannot go faster than its SHA-256, so read the
//! load generator's push MB/s against the `sha256` line here.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::hint::black_box;
use std::time::Duration;

const LEN: usize = 16 << 20;

fn digest<D: Digest>(data: &[u8]) -> usize {
    let mut h = D::new();
    // Upload bytes arrive in receive-buffer slices, not one call; hash the same way.
    for chunk in data.chunks(1 << 20) {
        h.update(chunk);
    }
    h.finalize().len()
}

fn hashes(c: &mut Criterion) {
    let mut data = vec![0u8; LEN];
    berth_benches::payload::fill_random(&mut data, 42);
    let mut g = c.benchmark_group("hash_16MiB");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("sha256", |b| b.iter(|| digest::<Sha256>(black_box(&data))));
    g.bench_function("sha512", |b| b.iter(|| digest::<Sha512>(black_box(&data))));
    g.bench_function("sha1", |b| b.iter(|| digest::<Sha1>(black_box(&data))));
    g.bench_function("md5", |b| b.iter(|| digest::<Md5>(black_box(&data))));
    g.finish();
}

criterion_group! {
    name = benches;
    // Few, short samples: the machine is shared, and each iteration is already 16 MiB.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = hashes
}
criterion_main!(benches);
