//! `nosuid`, `nodev`, `noexec` and `ro` given to `rwxfs mount -o`, `mount -t rwxfs -o` or an
//! fstab line: the kernel mount carries them, and a setuid program, a device node, a script
//! and a write behave as they say.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rwxfs_tests::mount_script::MountScript;
use rwxfs_tests::{assert_fsck_clean, harness, Harness};

/// The per-mount options (`rw,nosuid,...`) of the mount at `mp`, as its process sees it.
fn mount_options(h: &Harness, mp: &Path) -> Vec<String> {
    let pid = h.mount_pid(mp).expect("a mount of this harness");
    let inner = inner_path(h, mp);
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&*inner.to_string_lossy()))
        .unwrap_or_else(|| panic!("{} not in mountinfo:\n{info}", inner.display()));
    line.split(' ')
        .nth(5)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect()
}

/// The mount point as the mount's own namespace names it.
fn inner_path(h: &Harness, mp: &Path) -> PathBuf {
    h.command_in(mp, "true").expect("a mount of this harness").1
}

/// Run `argv` in the mount's namespace, as root or (with `as_nobody`) as uid/gid 65534.
fn run_in(h: &Harness, mp: &Path, as_nobody: bool, argv: &[&str]) -> std::process::Output {
    let (mut c, _) = if as_nobody {
        h.command_in(mp, "setpriv").unwrap()
    } else {
        h.command_in(mp, argv[0]).unwrap()
    };
    if as_nobody {
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.args(argv);
    } else {
        c.args(&argv[1..]);
    }
    c.output().unwrap()
}

/// A script, a setuid copy of `id` owned by uid 1000, and a device node like /dev/null.
fn make_subjects(mp: &Path) {
    std::fs::write(mp.join("script"), "#!/bin/sh\necho script ran\n").unwrap();
    std::fs::set_permissions(mp.join("script"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy("/usr/bin/id", mp.join("id-suid")).unwrap();
    std::os::unix::fs::chown(mp.join("id-suid"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(mp.join("id-suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let node =
        std::ffi::CString::new(mp.join("null").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; makedev has no preconditions.
    let r = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
}

/// What the three subjects did on the mount at `mp`: (script ran, euid the setuid `id`
/// reported, device node opened).
fn try_subjects(h: &Harness, mp: &Path) -> (bool, String, Result<(), i32>) {
    let inner = inner_path(h, mp);
    let script = run_in(h, mp, false, &[&inner.join("script").to_string_lossy()]);
    let ran = String::from_utf8_lossy(&script.stdout).contains("script ran");
    if !ran {
        let err = String::from_utf8_lossy(&script.stderr);
        assert!(err.contains("Permission denied"), "script: {err}");
    }
    let id = run_in(
        h,
        mp,
        true,
        &[&inner.join("id-suid").to_string_lossy(), "-u"],
    );
    let euid = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let dev = std::fs::File::open(mp.join("null"))
        .map(drop)
        .map_err(|e| e.raw_os_error().unwrap_or(0));
    (ran, euid, dev)
}

#[test]
fn nosuid_nodev_noexec_given_to_rwxfs_mount_are_in_the_mount_and_hold() {
    let mut h = harness();
    // The setuid program must be reachable by uid 65534 through the scratch directory.
    std::fs::set_permissions(h.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &["--no-root-squash"]).unwrap();
    let plain = h.mount_remote(&addr).unwrap();
    let strict = h
        .mount_remote_with(&addr, &["-o", "nosuid,nodev", "-o", "noexec"])
        .unwrap();
    // Programs run here, so the setuid bit is what is tested.
    let nosuid = h.mount_remote_with(&addr, &["-o", "nosuid,nodev"]).unwrap();
    let opts = mount_options(&h, &strict);
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(opts.iter().any(|o| o == f), "{f} missing: {opts:?}");
    }
    let opts = mount_options(&h, &plain);
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(
            !opts.iter().any(|o| o == f),
            "{f} on a plain mount: {opts:?}"
        );
    }
    make_subjects(&plain);
    // Without the flags each works; with them none does (under noexec, no program runs).
    assert_eq!(try_subjects(&h, &plain), (true, "1000".to_string(), Ok(())));
    assert_eq!(
        try_subjects(&h, &nosuid),
        (true, "65534".to_string(), Err(libc::EACCES))
    );
    assert_eq!(
        try_subjects(&h, &strict),
        (false, String::new(), Err(libc::EACCES))
    );
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn ro_given_as_an_option_refuses_writes_with_erofs() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let rw = h.mount_remote(&addr).unwrap();
    std::fs::write(rw.join("f"), b"before").unwrap();
    let ro = h.mount_remote_with(&addr, &["-o", "ro"]).unwrap();
    let opts = mount_options(&h, &ro);
    assert_eq!(opts.first().map(String::as_str), Some("ro"), "{opts:?}");
    assert_eq!(std::fs::read(ro.join("f")).unwrap(), b"before");
    for e in [
        std::fs::write(ro.join("f"), b"after").unwrap_err(),
        std::fs::write(ro.join("g"), b"new").unwrap_err(),
        std::fs::create_dir(ro.join("d")).unwrap_err(),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    }
    assert_eq!(std::fs::read(rw.join("f")).unwrap(), b"before");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn flags_in_mount_t_rwxfs_and_in_fstab_reach_the_mount() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.path("mp");
    std::fs::create_dir(&mp).unwrap();
    let fstab = h.path("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{addr} {} rwxfs defaults,_netdev,nodev,noexec 0 0\n",
            mp.display()
        ),
    )
    .unwrap();
    // The helper is linked in only inside this private mount namespace.
    let script = r#"
        mount -t rwxfs -o nosuid,nodev,noexec "$ADDR" "$MP"
        printf '#!/bin/sh\necho script ran\n' > "$MP/script"
        chmod 755 "$MP/script"
        echo "mount-t: $(grep " $MP " /proc/self/mountinfo | cut -d' ' -f6)"
        if "$MP/script"; then echo "a noexec mount ran a script"; exit 1; fi
        umount "$MP"
        mount -T "$FSTAB" "$MP"
        echo "fstab: $(grep " $MP " /proc/self/mountinfo | cut -d' ' -f6)"
        if "$MP/script"; then echo "a noexec mount ran a script"; exit 1; fi
        umount "$MP"
    "#;
    let ran = MountScript::new(script)
        .env("ADDR", &addr)
        .env("MP", &mp)
        .env("FSTAB", &fstab)
        .run();
    ran.assert_ok();
    let stdout = &ran.stdout;
    let flags = |tag: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} line in {stdout}"));
        line.trim().split(',').map(String::from).collect()
    };
    let t = flags("mount-t:");
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(t.iter().any(|o| o == f), "mount -t: {f} missing: {t:?}");
    }
    let f = flags("fstab:");
    for x in ["nodev", "noexec"] {
        assert!(f.iter().any(|o| o == x), "fstab: {x} missing: {f:?}");
    }
    assert!(
        !f.iter().any(|o| o == "nosuid"),
        "fstab: nosuid not asked: {f:?}"
    );
    ran.assert_mounts_ended();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
