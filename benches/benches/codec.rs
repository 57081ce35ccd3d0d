//! Wire codec micro-benchmarks: encoding and decoding the frames every call pays for — a
//! small metadata call, a 1 MiB write with its bulk bytes, an attribute reply.
//! `cargo bench -p rwxfs-benches --bench codec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use protocol::codec::{decode_body, encode_frame, encode_frame_head};
use protocol::{Attr, FileKind, TimeSpec};
use protocol::{ClientMsg, Request, Response, ServerMsg};

fn attr() -> Attr {
    let t = TimeSpec {
        sec: 1_700_000_000,
        nsec: 5,
    };
    Attr {
        ino: 42 << 32 | 7,
        generation: 3,
        size: 123_456,
        blocks: 248,
        atime: t,
        mtime: t,
        ctime: t,
        kind: FileKind::RegularFile,
        perm: 0o644,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        rdev: 0,
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let lookup = ClientMsg::Call {
        id: 12345,
        req: Request::Lookup {
            parent: 1,
            name: b"a-file-name.txt".to_vec(),
        },
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode lookup call", |b| {
        b.iter(|| encode_frame(std::hint::black_box(&lookup), &[]).unwrap())
    });
    let frame = encode_frame(&lookup, &[]).unwrap();
    g.bench_function("decode lookup call", |b| {
        b.iter(|| decode_body::<ClientMsg>(std::hint::black_box(&frame[4..])).unwrap())
    });
    let reply = ServerMsg::Reply {
        id: 12345,
        result: Ok(Response::Attr(attr())),
    };
    g.bench_function("encode attr reply", |b| {
        b.iter(|| encode_frame(std::hint::black_box(&reply), &[]).unwrap())
    });
    let rframe = encode_frame(&reply, &[]).unwrap();
    g.bench_function("decode attr reply", |b| {
        b.iter(|| decode_body::<ServerMsg>(std::hint::black_box(&rframe[4..])).unwrap())
    });
    let data = vec![0x5au8; 1 << 20];
    let write = ClientMsg::Call {
        id: 9,
        req: Request::Write {
            ino: 5,
            offset: 0,
            kill_priv: false,
        },
    };
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("frame a 1 MiB write", |b| {
        b.iter(|| {
            let mut f = encode_frame_head(&write, data.len()).unwrap();
            f.extend_from_slice(std::hint::black_box(&data));
            f
        })
    });
    let wframe = {
        let mut f = encode_frame_head(&write, data.len()).unwrap();
        f.extend_from_slice(&data);
        f
    };
    g.bench_function("decode a 1 MiB write (bulk not copied)", |b| {
        b.iter(|| decode_body::<ClientMsg>(std::hint::black_box(&wframe[4..])).unwrap())
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
