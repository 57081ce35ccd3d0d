//! The RADOS store beside the local image file, in one run: the same workloads on each, the
//! figures side by side. Without `--ceph-conf FILE --pool POOL` it starts a throwaway
//! one-monitor, one-OSD cluster on loopback (`rwxfs_tests::ceph`, needs Debian's ceph-mon and
//! ceph-osd) and removes it afterwards.
//!
//! cargo run --release -p rwxfs-tests --example store_throughput [-- --size-mib 256]

use std::time::Instant;

use rados_store::{CephOptions, Cluster, Header, ImageName, RadosStore, DEFAULT_OBJECT_SIZE};
use rwxfs_tests::ceph::{CephCluster, POOL};
use volume::{mkfs, BlockStore, FileStore, Ino, MkfsOptions, Volume};

const MIB: usize = 1 << 20;

struct Figures {
    seq_write: f64,
    seq_read: f64,
    random_writes: f64,
    fsynced_files: f64,
}

fn per_sec(n: f64, since: Instant) -> f64 {
    n / since.elapsed().as_secs_f64()
}

/// Sequential 1 MiB writes then a flush; sequential 1 MiB reads; 4 KiB writes at scattered
/// offsets with a flush every 32 (a journal's pattern); 64 KiB files each created, written and
/// fsynced through the engine on a fresh volume.
/// `evict` drops what a cache outside the store holds (the page cache of a local image), so
/// reads come from where the store keeps its bytes.
/// `fresh` makes the store empty (all zeros) and returns it; it is called before the raw
/// workloads and again before the engine's, which needs a zeroed image to make a volume on.
fn measure<S: BlockStore + Clone>(fresh: impl Fn() -> S, size: usize, evict: impl Fn()) -> Figures {
    let store = &fresh();
    let buf: Vec<u8> = (0..MIB).map(|i| (i % 253) as u8).collect();
    let t = Instant::now();
    for i in 0..size / MIB {
        store.write_at(&buf, (i * MIB) as u64).expect("write");
    }
    store.flush().expect("flush");
    let seq_write = per_sec((size / MIB) as f64, t);
    evict();
    let mut back = vec![0u8; MIB];
    let t = Instant::now();
    for i in 0..size / MIB {
        store.read_at(&mut back, (i * MIB) as u64).expect("read");
    }
    let seq_read = per_sec((size / MIB) as f64, t);
    let t = Instant::now();
    let blocks = (size / 4096) as u64;
    for i in 0..2048u64 {
        let block = i.wrapping_mul(2_654_435_761) % blocks;
        store.write_at(&buf[..4096], block * 4096).expect("write");
        if i % 32 == 31 {
            store.flush().expect("flush");
        }
    }
    let random_writes = per_sec(2048.0, t);
    let store = &fresh();
    mkfs(store, &MkfsOptions::default()).expect("mkfs");
    let mut v = Volume::open(store.clone()).expect("open");
    let t = Instant::now();
    for j in 0..200 {
        let a = v
            .create(Ino::ROOT, format!("f{j}").as_bytes(), 0o644, 0, 0)
            .expect("create");
        v.write(a.ino, 0, &buf[..64 << 10]).expect("write");
        v.fsync(a.ino).expect("fsync");
    }
    let fsynced_files = per_sec(200.0, t);
    Figures {
        seq_write,
        seq_read,
        random_writes,
        fsynced_files,
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let size = arg("--size-mib").map_or(256, |s| s.parse().expect("--size-mib N")) * MIB;
    let dir = tempfile::tempdir().expect("temporary directory");
    let img = dir.path().join("bench.img");
    let file = || {
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&img)
            .expect("image file");
        f.set_len(size as u64).expect("image size");
        std::sync::Arc::new(FileStore::from_file(f))
    };
    let evict = || {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&img).expect("image");
        // SAFETY: a plain advisory call on an open descriptor.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    };
    let local = measure(file, size, evict);

    let own = arg("--ceph-conf").is_none().then(CephCluster::start);
    let conf = arg("--ceph-conf")
        .map(Into::into)
        .or(own.as_ref().map(|c| c.conf()));
    let pool = arg("--pool").unwrap_or_else(|| POOL.to_string());
    let opts = CephOptions { conf, id: None };
    let cluster = Cluster::connect(&opts).expect("connect");
    let name = ImageName::parse(&format!("rados://{pool}/rwxfs-bench"))
        .expect("name")
        .expect("a rados name");
    let header = Header {
        size: size as u64,
        object_size: DEFAULT_OBJECT_SIZE,
    };
    let rados = || {
        let pool = cluster.pool(&pool).expect("pool");
        rados_store::create(&pool, &name, header).expect("create");
        std::sync::Arc::new(RadosStore::open_in(pool, &name, false).expect("open"))
    };
    let remote = measure(rados, size, || {});
    // Leave no objects behind on a cluster that is not ours.
    rados_store::create(&cluster.pool(&pool).expect("pool"), &name, header).expect("clean");
    cluster
        .pool(&pool)
        .expect("pool")
        .remove(&name.header_object())
        .expect("remove header");

    println!("store throughput, {} MiB image", size / MIB);
    println!("{:<44} {:>12} {:>12}", "", "local file", "RADOS");
    let rows = [
        (
            "sequential write, 1 MiB writes, MiB/s",
            local.seq_write,
            remote.seq_write,
        ),
        (
            "sequential read, 1 MiB reads, MiB/s",
            local.seq_read,
            remote.seq_read,
        ),
        (
            "4 KiB writes, flush every 32, writes/s",
            local.random_writes,
            remote.random_writes,
        ),
        (
            "64 KiB files created and fsynced, files/s",
            local.fsynced_files,
            remote.fsynced_files,
        ),
    ];
    for (what, l, r) in rows {
        println!("{what:<44} {l:>12.1} {r:>12.1}");
    }
}
