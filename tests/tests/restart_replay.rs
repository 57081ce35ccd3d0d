//! Server restarts under ordinary programs that never fsync, on two mounts: the server is
//! stopped (SIGTERM) or killed (SIGKILL) while they run and started again on the same image.
//! Each mount keeps the calls the server had not made durable and sends them again to the
//! restarted server, so the programs see no error, no step back in time and no ESTALE.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use rwxfs_tests::{finish, harness, Harness};

/// A server on a fresh image and two mounts of it; returns the image, address and mounts.
fn setup(h: &mut Harness) -> (PathBuf, String, Vec<PathBuf>) {
    let img = h.mkfs("v.img", "512M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts = (0..2).map(|_| h.mount_remote(&addr).unwrap()).collect();
    (img, addr, mounts)
}

/// Start `script` (bash) in the namespace of the mount at `mp`, with `$MNT` its mount point
/// there and `$ARG` set; its stdout is piped for progress lines.
fn spawn_sh(h: &Harness, mp: &Path, script: &str, arg: &str) -> Child {
    let (mut cmd, inner) = h.command_in(mp, "bash").expect("a mount of this harness");
    cmd.args(["-e", "-c", script])
        .env("MNT", &inner)
        .env("ARG", arg)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash")
}

/// Start `python3 -c program` in the namespace of the mount at `mp`, with the mount point
/// and `arg` as its arguments.
fn spawn_py(h: &Harness, mp: &Path, program: &str, arg: &str) -> Child {
    let (mut cmd, inner) = h
        .command_in(mp, "python3")
        .expect("a mount of this harness");
    cmd.args(["-c", program])
        .arg(&inner)
        .arg(arg)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3")
}

/// A running program whose progress lines (one per step done) are counted.
struct Program {
    child: Child,
    progress: std::sync::mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Program {
    fn new(mut child: Child) -> Program {
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Program {
            child,
            progress: rx,
            lines: Vec::new(),
        }
    }

    /// Wait until the program has printed `n` lines in all, or ended.
    fn wait_lines(&mut self, n: usize) {
        while self.lines.len() < n {
            match self.progress.recv() {
                Ok(l) => self.lines.push(l),
                Err(_) => return,
            }
        }
    }

    /// Wait for the end; the lines printed and, if it failed, its stderr.
    fn finish(mut self, what: &str) -> Vec<String> {
        let status = self.child.wait().expect("wait");
        self.lines.extend(self.progress.iter());
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(
            status.success(),
            "{what} failed ({status}) after {} steps:\n{}",
            self.lines.len(),
            err.trim()
        );
        self.lines
    }
}

/// Stop the server (SIGKILL if `crash`, else SIGTERM) and start it again on the same image
/// and address.
fn restart(h: &mut Harness, img: &Path, addr: &str, crash: bool) {
    if crash {
        h.kill_server();
    } else {
        h.stop_server().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let again = h.start_server_in(&[], img, addr, &[]).unwrap();
    assert_eq!(again, addr);
}

/// Restart the server each time every program has made `every` more steps, `times` times.
fn restart_under(
    h: &mut Harness,
    img: &Path,
    addr: &str,
    programs: &mut [Program],
    every: usize,
    times: usize,
) {
    for k in 1..=times {
        for p in programs.iter_mut() {
            p.wait_lines(k * every);
        }
        restart(h, img, addr, true);
    }
}

#[test]
fn a_planned_restart_leaves_fsync_and_close_of_unsynced_files_without_error() {
    let mut h = harness();
    let (img, addr, m) = setup(&mut h);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut f = std::fs::File::create(m[0].join("unsynced")).unwrap();
    f.write_all(&data).unwrap();
    let mut g = std::fs::File::create(m[0].join("closed-later")).unwrap();
    g.write_all(b"written before the restart\n").unwrap();
    restart(&mut h, &img, &addr, false);
    f.sync_all()
        .expect("fsync after a planned restart of a file written before it");
    // close(2) reports what the flush found.
    let fd = g.into_raw_fd();
    // SAFETY: closing a descriptor this test owns.
    let r = unsafe { libc::close(fd) };
    assert_eq!(
        r,
        0,
        "close after a planned restart: {}",
        std::io::Error::last_os_error()
    );
    drop(f);
    assert_eq!(std::fs::read(m[1].join("unsynced")).unwrap(), data);
    assert_eq!(
        std::fs::read(m[1].join("closed-later")).unwrap(),
        b"written before the restart\n"
    );
    finish(h, &img);
}

#[test]
fn writes_and_metadata_not_yet_durable_survive_a_crash_restart() {
    let mut h = harness();
    let (img, addr, m) = setup(&mut h);
    let data: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::create_dir(m[0].join("d")).unwrap();
    std::fs::write(m[0].join("d/a"), &data).unwrap();
    std::fs::rename(m[0].join("d/a"), m[0].join("d/b")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(m[0].join("d/b"))
        .unwrap();
    f.write_all(b"tail").unwrap();
    std::fs::set_permissions(
        m[0].join("d/b"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    // Nothing fsynced, and killed at once: the commit interval has not passed.
    restart(&mut h, &img, &addr, true);
    f.sync_all().expect("fsync after a crash restart");
    drop(f);
    let mut want = data.clone();
    want.extend_from_slice(b"tail");
    for mp in &m {
        assert_eq!(std::fs::read(mp.join("d/b")).unwrap(), want);
        assert!(!mp.join("d/a").exists());
        let mode = std::fs::metadata(mp.join("d/b")).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o640
        );
    }
    finish(h, &img);
}

/// `git` in the namespace of the mount at `mp`, trusting repositories owned by nobody.
fn git_in(h: &Harness, mp: &Path) -> (std::process::Command, PathBuf) {
    let (mut c, inner) = h.command_in(mp, "git").expect("a mount of this harness");
    c.env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*");
    (c, inner)
}

/// Pushes `$ARG` commits, one at a time, from a clone on the mount to branch `w$ARG` of the
/// shared bare repository on the mount.
const PUSHER: &str = r#"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@x
# Files made through a root-squashed mount belong to nobody: trust them (in a global
# configuration of its own, which the local transport's upload-pack reads too).
export GIT_CONFIG_GLOBAL=$(mktemp)
trap 'rm -f "$GIT_CONFIG_GLOBAL"' EXIT
git config --global safe.directory '*'
w=${ARG%%:*}; n=${ARG##*:}
git clone -q "$MNT/shared.git" "$MNT/clone$w"
cd "$MNT/clone$w"
git checkout -q -b "w$w"
for i in $(seq 1 "$n"); do
    echo "$w $i" > "file$w"
    git add "file$w"
    git commit -q -m "w$w step $i"
    git push -q origin "HEAD:refs/heads/w$w"
    echo "pushed $i $(git rev-parse HEAD)"
done
"#;

#[test]
fn git_pushes_to_a_shared_bare_repository_go_on_through_crash_restarts() {
    let mut h = harness();
    let (img, addr, m) = setup(&mut h);
    let (mut init, inner) = git_in(&h, &m[0]);
    let out = init
        .args(["init", "-q", "--bare"])
        .arg(inner.join("shared.git"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let steps = 24;
    let mut pushers: Vec<Program> = (0..2)
        .map(|w| Program::new(spawn_sh(&h, &m[w], PUSHER, &format!("{w}:{steps}"))))
        .collect();
    restart_under(&mut h, &img, &addr, &mut pushers, 6, 3);
    let heads: Vec<String> = pushers
        .into_iter()
        .enumerate()
        .map(|(w, p)| {
            let lines = p.finish(&format!("pusher {w}"));
            assert_eq!(lines.len(), steps);
            lines[steps - 1].rsplit(' ').next().unwrap().to_string()
        })
        .collect();
    // The bare repository, read through the other mount, has every branch at its last push.
    for (w, head) in heads.iter().enumerate() {
        let (mut c, inner) = git_in(&h, &m[1 - w]);
        let out = c
            .arg("-C")
            .arg(inner.join("shared.git"))
            .args(["rev-parse", &format!("refs/heads/w{w}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), head);
    }
    let (mut c, inner) = git_in(&h, &m[1]);
    let out = c
        .arg("-C")
        .arg(inner.join("shared.git"))
        .args(["fsck", "--strict"])
        .output()
        .unwrap();
    assert!(out.status.success(), "git fsck: {out:?}");
    finish(h, &img);
}

/// `$ARG` increments of the shared counter, each under flock(1).
const COUNTER: &str = r#"
for i in $(seq 1 "$ARG"); do
    flock "$MNT/lock" sh -ec 'n=$(cat "$MNT/counter"); echo $((n + 1)) > "$MNT/counter"'
    echo "step $i"
done
"#;

#[test]
fn a_flock_guarded_counter_counts_every_increment_through_crash_restarts() {
    let mut h = harness();
    let (img, addr, m) = setup(&mut h);
    std::fs::write(m[0].join("counter"), "0\n").unwrap();
    std::fs::write(m[0].join("lock"), "").unwrap();
    let steps = 60;
    let mut counters: Vec<Program> = (0..2)
        .map(|w| Program::new(spawn_sh(&h, &m[w], COUNTER, &steps.to_string())))
        .collect();
    restart_under(&mut h, &img, &addr, &mut counters, 12, 3);
    for (w, p) in counters.into_iter().enumerate() {
        assert_eq!(p.finish(&format!("counter {w}")).len(), steps);
    }
    for mp in &m {
        let n = std::fs::read_to_string(mp.join("counter")).unwrap();
        assert_eq!(n.trim(), (2 * steps).to_string(), "increments lost");
    }
    finish(h, &img);
}

/// Replaces `file` `sys.argv[2]` times by writing a new version aside and renaming it over.
const REPLACER: &str = r#"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    tmp = os.path.join(d, "file.tmp")
    with open(tmp, "w") as f:
        f.write("version %d\n" % i)
    os.rename(tmp, os.path.join(d, "file"))
    print("replaced", i, flush=True)
"#;

/// Reads `file` until it says version `sys.argv[2]`; each version read must be at least the
/// one before.
const READER: &str = r#"
import os, sys
d, last = sys.argv[1], int(sys.argv[2])
seen = 0
while seen < last:
    with open(os.path.join(d, "file")) as f:
        v = int(f.read().split()[1])
    if v < seen:
        sys.exit("went back from version %d to %d" % (seen, v))
    if v > seen:
        print("read", v, flush=True)
    seen = v
"#;

#[test]
fn readers_of_a_file_replaced_by_rename_never_go_back_nor_get_estale_through_crash_restarts() {
    let mut h = harness();
    let (img, addr, m) = setup(&mut h);
    std::fs::write(m[0].join("file"), "version 0\n").unwrap();
    let versions = 400;
    let mut writer = vec![Program::new(spawn_py(
        &h,
        &m[0],
        REPLACER,
        &versions.to_string(),
    ))];
    let reader = Program::new(spawn_py(&h, &m[1], READER, &versions.to_string()));
    restart_under(&mut h, &img, &addr, &mut writer, 80, 3);
    writer.pop().unwrap().finish("replacer");
    reader.finish("reader");
    assert_eq!(
        std::fs::read_to_string(m[1].join("file")).unwrap(),
        format!("version {versions}\n")
    );
    finish(h, &img);
}

/// Delivers `sys.argv[2]` (as "W:N") messages Maildir-style: written in tmp/, renamed into
/// new/; prints each delivered name.
const DELIVER: &str = r#"
import os, sys
d = sys.argv[1]
w, n = sys.argv[2].split(":")
for i in range(1, int(n) + 1):
    name = "%s.%d.msg" % (w, i)
    with open(os.path.join(d, "Maildir/tmp", name), "w") as f:
        f.write("From: %s\n\nmessage %d\n" % (w, i) * 20)
    os.rename(os.path.join(d, "Maildir/tmp", name), os.path.join(d, "Maildir/new", name))
    print(name, flush=True)
"#;

#[test]
fn maildir_delivery_keeps_every_message_exactly_once_through_crash_restarts() {
    let mut h = harness();
    let (img, addr, m) = setup(&mut h);
    for d in ["Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"] {
        std::fs::create_dir(m[0].join(d)).unwrap();
    }
    let per = 150;
    let mut deliverers: Vec<Program> = (0..2)
        .map(|w| Program::new(spawn_py(&h, &m[w], DELIVER, &format!("w{w}:{per}"))))
        .collect();
    restart_under(&mut h, &img, &addr, &mut deliverers, 30, 3);
    let mut delivered: Vec<String> = Vec::new();
    for (w, p) in deliverers.into_iter().enumerate() {
        delivered.extend(p.finish(&format!("deliverer {w}")));
    }
    assert_eq!(delivered.len(), 2 * per);
    for mp in &m {
        let mut new: Vec<String> = std::fs::read_dir(mp.join("Maildir/new"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        new.sort();
        let mut want = delivered.clone();
        want.sort();
        assert_eq!(new, want, "Maildir/new differs from what was delivered");
        let tmp = std::fs::read_dir(mp.join("Maildir/tmp")).unwrap().count();
        assert_eq!(tmp, 0, "messages left in tmp/");
        for name in &delivered {
            let (w, rest) = name.split_once('.').unwrap();
            let i: usize = rest.split('.').next().unwrap().parse().unwrap();
            let want = format!("From: {w}\n\nmessage {i}\n").repeat(20);
            assert_eq!(
                std::fs::read_to_string(mp.join("Maildir/new").join(name)).unwrap(),
                want,
                "{name}"
            );
        }
    }
    finish(h, &img);
}

/// Creates `$ARG` files of 64 KiB in its own directory, each written aside and renamed.
const CREATOR: &str = r#"
w=${ARG%%:*}; n=${ARG##*:}
mkdir -p "$MNT/w$w"
for j in $(seq 1 "$n"); do
    head -c 65536 /dev/zero > "$MNT/w$w/f$j"
    mv "$MNT/w$w/f$j" "$MNT/w$w/g$j"
    echo "made $j"
done
"#;

#[test]
fn eight_mounts_creating_and_renaming_see_no_error_through_crash_restarts() {
    let mut h = harness();
    let img = h.mkfs("v.img", "512M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let m: Vec<PathBuf> = (0..8).map(|_| h.mount_remote(&addr).unwrap()).collect();
    let n = 45;
    let mut creators: Vec<Program> = (0..8)
        .map(|w| Program::new(spawn_sh(&h, &m[w], CREATOR, &format!("{w}:{n}"))))
        .collect();
    // Restored sessions replay their creates at the inode numbers they had while the
    // others' creates wait: no create takes a number a replay needs.
    restart_under(&mut h, &img, &addr, &mut creators, 10, 3);
    for (w, p) in creators.into_iter().enumerate() {
        assert_eq!(p.finish(&format!("creator {w}")).len(), n);
    }
    for w in 0..8 {
        let mut names: Vec<String> = std::fs::read_dir(m[(w + 1) % 8].join(format!("w{w}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want: Vec<String> = (1..=n).map(|j| format!("g{j}")).collect();
        want.sort();
        assert_eq!(names, want, "directory w{w}");
        for name in &names {
            let len = std::fs::metadata(m[w].join(format!("w{w}/{name}")))
                .unwrap()
                .len();
            assert_eq!(len, 65536, "w{w}/{name}");
        }
    }
    finish(h, &img);
}
