//! Real programs on real mounts, run inside each mount's own namespace as a container would:
//! cp -a and diff -r, git, tar, SQLite and cargo (tar and SQLite on direct mounts too). Every
//! test ends with a clean fsck.

use std::path::{Path, PathBuf};

use rwxfs_tests::{assert_fsck_clean, finish, harness, Harness};

/// Run `script` with `sh -e` in the namespace of the mount at `mp`, with `$MNT` the mount
/// point there; panics with the output if it fails. Returns stdout.
fn sh(h: &Harness, mp: &Path, script: &str) -> String {
    let (mut cmd, inner) = h.command_in(mp, "sh").expect("a mount of this harness");
    let out = cmd
        .args(["-e", "-c", script])
        .env("MNT", &inner)
        .env("SRC", source_tree())
        .current_dir("/")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "script failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The workspace root, whose sources make a tree worth copying.
fn source_tree() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A server on a fresh image and `n` mounts of it.
fn shared(h: &mut Harness, n: usize) -> (PathBuf, Vec<PathBuf>) {
    let img = h.mkfs("v.img", "1G").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts = (0..n).map(|_| h.mount_remote(&addr).unwrap()).collect();
    (img, mounts)
}

/// A server on a fresh image and `n` direct mounts of it (file data on the image itself).
fn direct(h: &mut Harness, n: usize) -> (PathBuf, Vec<PathBuf>) {
    let img = h.mkfs("v.img", "1G").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts = (0..n)
        .map(|_| h.mount_remote_with(&addr, &["--direct"]).unwrap())
        .collect();
    (img, mounts)
}

#[test]
fn cp_a_of_a_source_tree_then_diff_r_is_equal_on_every_mount() {
    let mut h = harness();
    let (img, m) = shared(&mut h, 2);
    // A tree with symlinks, a hard link, modes and times: the project's sources and the zone
    // database (hundreds of symlinks).
    sh(
        &h,
        &m[0],
        r#"
        mkdir "$MNT/copy"
        for d in volume protocol server client-fuse demo src; do cp -a "$SRC/$d" "$MNT/copy/"; done
        cp -a /usr/share/zoneinfo "$MNT/copy/zoneinfo"
        ln "$MNT/copy/src/main.rs" "$MNT/copy/main-hardlink.rs"
        for d in volume protocol server client-fuse demo src; do
            diff -r --no-dereference "$SRC/$d" "$MNT/copy/$d"
        done
        diff -r --no-dereference /usr/share/zoneinfo "$MNT/copy/zoneinfo"
        "#,
    );
    // The second mount sees the same tree: contents, symlinks, modes and times.
    let listing = |mp: &Path| {
        sh(
            &h,
            mp,
            r#"cd "$MNT/copy" && find . -printf '%p %y %m %s %T@ %l %n\n' | sort && find . -type f -exec md5sum {} + | sort"#,
        )
    };
    let a = listing(&m[0]);
    assert!(a.lines().count() > 2000, "tree too small:\n{a}");
    assert_eq!(a, listing(&m[1]));
    sh(
        &h,
        &m[1],
        r#"diff -r --no-dereference /usr/share/zoneinfo "$MNT/copy/zoneinfo"
           test "$(stat -c %h "$MNT/copy/main-hardlink.rs")" = 2"#,
    );
    finish(h, &img);
}

#[test]
fn cp_a_and_diff_r_on_a_raw_mount() {
    let mut h = harness();
    let img = h.mkfs("v.img", "512M").unwrap();
    let mp = h.mount_raw(&img).unwrap();
    sh(
        &h,
        &mp,
        r#"cp -a /usr/share/zoneinfo "$MNT/zoneinfo"
           diff -r --no-dereference /usr/share/zoneinfo "$MNT/zoneinfo""#,
    );
    h.unmount_all().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn git_init_commit_and_fsck_across_mounts() {
    let mut h = harness();
    let (img, m) = shared(&mut h, 2);
    sh(
        &h,
        &m[0],
        r#"
        export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid
        export GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.invalid
        # Root squash (the default) makes root's files nobody's: git must trust them.
        export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'
        git init -q "$MNT/repo"
        cd "$MNT/repo"
        cp -a "$SRC/volume" .
        git add -A && git commit -qm one
        echo change >> volume/Cargo.toml
        git mv volume/src/fs.rs volume/src/fs_moved.rs
        git commit -qam two
        git gc -q
        git fsck --strict
        "#,
    );
    // The other mount reads the repository as a second machine would.
    let out = sh(
        &h,
        &m[1],
        r#"
        cd "$MNT/repo"
        git -c safe.directory='*' fsck --strict
        git -c safe.directory='*' log --format=%s
        git -c safe.directory='*' status --porcelain
        "#,
    );
    assert_eq!(out, "two\none\n");
    finish(h, &img);
}

#[test]
fn tar_create_and_extract_round_trip() {
    let mut h = harness();
    let (img, m) = shared(&mut h, 2);
    tar_round_trip(&h, &m);
    finish(h, &img);
}

#[test]
fn tar_create_and_extract_round_trip_on_direct_mounts() {
    let mut h = harness();
    let (img, m) = direct(&mut h, 2);
    tar_round_trip(&h, &m);
    finish(h, &img);
}

/// A tar of the sources made on one mount, extracted and compared on another.
fn tar_round_trip(h: &Harness, m: &[PathBuf]) {
    sh(
        h,
        &m[0],
        r#"
        cd "$SRC" && tar -cf "$MNT/src.tar" volume protocol src
        mkdir "$MNT/out"
        "#,
    );
    sh(
        h,
        &m[1],
        r#"
        cd "$MNT/out" && tar -xf "$MNT/src.tar"
        for d in volume protocol src; do diff -r "$SRC/$d" "$MNT/out/$d"; done
        cd "$MNT/out" && tar -cf - volume | tar -tf - | grep -q volume/src/fs.rs
        "#,
    );
}

#[test]
fn sqlite_database_used_by_one_process() {
    let mut h = harness();
    let (img, m) = shared(&mut h, 2);
    sqlite_one_process(&h, &m);
    finish(h, &img);
}

#[test]
fn sqlite_database_used_by_one_process_on_direct_mounts() {
    let mut h = harness();
    let (img, m) = direct(&mut h, 2);
    sqlite_one_process(&h, &m);
    finish(h, &img);
}

/// A database written, vacuumed and checked on one mount, checked again on another.
fn sqlite_one_process(h: &Harness, m: &[PathBuf]) {
    sh(
        h,
        &m[0],
        r#"
        DB="$MNT/app.db"
        sqlite3 "$DB" 'PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);'
        {
            echo 'BEGIN;'
            i=0; while [ $i -lt 2000 ]; do echo "INSERT INTO t(v) VALUES('row $i');"; i=$((i+1)); done
            echo 'COMMIT;'
            echo 'DELETE FROM t WHERE id % 3 = 0;'
            echo 'VACUUM;'
        } | sqlite3 "$DB"
        test "$(sqlite3 "$DB" 'PRAGMA integrity_check;')" = ok
        "#,
    );
    let out = sh(
        h,
        &m[1],
        r#"sqlite3 "$MNT/app.db" 'PRAGMA integrity_check; SELECT count(*) FROM t;'"#,
    );
    assert_eq!(out, "ok\n1334\n");
}

#[test]
fn cargo_builds_a_small_crate_inside_the_mount() {
    let mut h = harness();
    let (img, m) = shared(&mut h, 1);
    let out = sh(
        &h,
        &m[0],
        r#"
        cd "$MNT"
        cargo new --quiet --vcs none hello
        cd hello
        printf 'fn main() { println!("built on rwxfs {}", 6 * 7); }\n' > src/main.rs
        CARGO_TARGET_DIR="$MNT/hello/target" cargo build --quiet --offline
        ./target/debug/hello
        "#,
    );
    assert_eq!(out, "built on rwxfs 42\n");
    finish(h, &img);
}
