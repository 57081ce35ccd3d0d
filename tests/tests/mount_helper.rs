//! `mount -t rwxfs` and an /etc/fstab line, through the `mount.rwxfs` helper, as an admin
//! would use them, the helper installed only inside a private mount namespace (`mount_script`:
//! the machine's /sbin is never touched).

use rwxfs_tests::mount_script::MountScript;
use rwxfs_tests::{assert_fsck_clean, harness};

#[test]
fn mount_t_rwxfs_and_an_fstab_line_work_through_the_helper() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.path("mp");
    std::fs::create_dir(&mp).unwrap();
    let fstab = h.path("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# rwxfs volume\n{addr} {} rwxfs defaults,_netdev,node_id=fstab-node 0 0\n",
            mp.display()
        ),
    )
    .unwrap();
    let script = r#"
        mount -t rwxfs "$ADDR" "$MP"
        echo written-through-mount-t > "$MP/a"
        grep "^$ADDR $MP fuse" /proc/self/mounts
        umount "$MP"
        mount -T "$FSTAB" "$MP"
        cat "$MP/a"
        mount -t rwxfs -o ro "$ADDR" "$MP/../ro" 2>&1 || true
        if echo x > "$MP/../ro/b" 2>/dev/null; then echo "read-only mount took a write"; exit 1; fi
        if mount -t rwxfs -o bogus "$ADDR" "$MP" 2>&1; then exit 1; fi
        umount "$MP/../ro"
        umount "$MP"
    "#;
    std::fs::create_dir(h.path("ro")).unwrap();
    let ran = MountScript::new(script)
        .env("ADDR", &addr)
        .env("MP", &mp)
        .env("FSTAB", &fstab)
        .run();
    ran.assert_ok();
    let (stdout, stderr) = (&ran.stdout, &ran.stderr);
    assert!(stdout.contains("written-through-mount-t"), "{stdout}");
    assert!(
        stdout.contains("mount.rwxfs: unknown option bogus")
            || stderr.contains("unknown option bogus"),
        "{stdout}\n{stderr}"
    );
    // Every background mount process the script started has exited after its umount.
    ran.assert_mounts_ended();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn fstab_and_mount_o_direct_mount_directly_on_the_image_named() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let server = h.server_pid().unwrap();
    // The image as "this machine" sees it: under another path.
    let seen = h.path("seen-here.img");
    std::os::unix::fs::symlink(&img, &seen).unwrap();
    let (mp, mp2) = (h.path("mp"), h.path("mp2"));
    std::fs::create_dir(&mp).unwrap();
    std::fs::create_dir(&mp2).unwrap();
    let fstab = h.path("fstab");
    std::fs::write(
        &fstab,
        format!(
            "{addr} {} rwxfs defaults,_netdev,direct_image={} 0 0\n",
            mp.display(),
            seen.display()
        ),
    )
    .unwrap();
    let script = r#"
        mount -T "$FSTAB" "$MP"
        grep "^$ADDR $MP fuse" /proc/self/mounts
        before=$(awk '/^wchar:/ {print $2}' /proc/$SERVER/io)
        dd if=/dev/urandom of="$MP/big" bs=1M count=32 conv=fsync 2>/dev/null
        after=$(awk '/^wchar:/ {print $2}' /proc/$SERVER/io)
        echo "server-wrote $((after - before))"
        mount -t rwxfs -o direct "$ADDR" "$MP2"
        cmp "$MP/big" "$MP2/big"
        echo same-on-both
        umount "$MP2"
        if mount -t rwxfs -o direct_image=/no/such/image "$ADDR" "$MP2" 2>&1; then exit 1; fi
        if mount -t rwxfs -o raw,direct "$ADDR" "$MP2" 2>&1; then exit 1; fi
        umount "$MP"
    "#;
    let ran = MountScript::new(script)
        .env("ADDR", &addr)
        .env("MP", &mp)
        .env("MP2", &mp2)
        .env("FSTAB", &fstab)
        .env("SERVER", server.to_string())
        .run();
    ran.assert_ok();
    let (stdout, stderr) = (&ran.stdout, &ran.stderr);
    assert!(stdout.contains("same-on-both"), "{stdout}");
    // 32 MiB written on the direct mount: almost none of it through the server.
    let wrote: u64 = stdout
        .split("server-wrote ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no server-wrote line in {stdout}"));
    assert!(wrote < 4 << 20, "the server wrote {wrote} bytes for 32 MiB");
    let both = format!("{stdout}\n{stderr}");
    assert!(both.contains("/no/such/image"), "{both}");
    assert!(both.contains("raw and direct"), "{both}");
    ran.assert_mounts_ended();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
