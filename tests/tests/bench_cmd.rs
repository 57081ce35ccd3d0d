//! `rwxfs bench`, as a user runs it: on a cluster of its own (started and removed by it) and
//! on mount points it is given (here a plain directory: any file system will do). Every
//! workload reports a figure and verifies its data; bad arguments are refused by name.

use std::process::Command;

use rwxfs_tests::bin;

/// Processes whose command line mentions `what`.
fn processes_naming(what: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(what) {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn bench_on_its_own_cluster_verifies_every_workload_and_leaves_nothing_behind() {
    let out_dir = tempfile::tempdir().unwrap();
    let plot = out_dir.path().join("scaling.svg");
    let out = Command::new(bin())
        .args([
            "bench",
            "--size",
            "16M",
            "--files",
            "40",
            "--seconds",
            "1",
            "--json",
        ])
        .arg("--plot")
        .arg(&plot)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["all_verified"], true, "{j:#}");
    let outcomes = j["outcomes"].as_array().unwrap();
    let names: Vec<&str> = outcomes
        .iter()
        .map(|o| o["workload"].as_str().unwrap())
        .collect();
    for want in [
        "sequential write, 1 MiB I/O",
        "sequential read, cold cache",
        "4 writers, own mounts, own files",
        "4 writers, one file, disjoint regions",
        "small files, 1 mount: create",
        "small files, 4 mounts: unlink",
        "random 4 KiB writes",
        "scaling: 1 writer",
        "scaling: 8 writers",
        "restart, planned (SIGTERM): serving again",
        "restart, planned (SIGTERM): a call returned on all 9 mounts, after it",
        "restart, crash (SIGKILL): a call returned on all 9 mounts, before it",
        "restart, crash (SIGKILL): a call returned on all 9 mounts, after it",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for o in outcomes {
        assert!(o["value"].as_f64().unwrap() > 0.0, "{o}");
        assert!(o["wrong"].is_null(), "{o}");
    }
    assert!(j["peak_rss_kib"]["server"].as_u64().unwrap() > 0);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg") && svg.contains("concurrent writers"));
    // Its server and mounts are gone: no process names the server's address any more.
    let addr = stderr
        .lines()
        .find_map(|l| l.strip_prefix("rwxfs bench: a server on "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the server's address in the log");
    let left = processes_naming(addr);
    assert!(left.is_empty(), "left running: {left:?}");
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bench_runs_on_given_mount_points_of_any_file_system() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["bench", "--size", "8M", "--files", "20", "--seconds", "1"])
        .args(["--only", "sequential,small,random"])
        .arg("--mounts")
        .arg(d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sequential write, 1 MiB I/O"), "{stdout}");
    assert!(stdout.contains("random 4 KiB writes"), "{stdout}");
    assert!(!stdout.contains("WRONG"), "{stdout}");
    assert!(
        !stdout.contains("scaling"),
        "--only was not honoured: {stdout}"
    );
    // Its work directory is gone.
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn bench_refuses_bad_arguments_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let m = d.path().to_str().unwrap();
    let (code, err) = run(&["--mounts", m, "--only", "nonsense"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown workload \"nonsense\""), "{err}");
    let (code, err) = run(&["--mounts", "/no/such/dir"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/no/such/dir: not a directory"), "{err}");
    let (code, err) = run(&["--mounts", m, "--plot", "out.png"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("SVG"), "{err}");
    let (code, err) = run(&["--size", "lots"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("expected a number"), "{err}");
}

#[test]
fn bench_direct_measures_mounts_through_the_server_and_direct_mounts_in_one_run() {
    let out = Command::new(bin())
        .args([
            "bench",
            "--direct",
            "--only",
            "sequential,writers",
            "--size",
            "16M",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for side in ["server", "direct"] {
        assert_eq!(j[side]["all_verified"], true, "{j:#}");
        let names: Vec<&str> = j[side]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["workload"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"sequential write, 1 MiB I/O"),
            "{side}: {names:?}"
        );
        assert!(
            names.contains(&"sequential read, cold cache"),
            "{side}: {names:?}"
        );
    }
    assert!(
        j["direct"]["system"]
            .as_str()
            .unwrap()
            .contains("direct mounts"),
        "{j:#}"
    );
    let refused = Command::new(bin())
        .args(["bench", "--direct", "--mounts", "/tmp"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn bench_direct_draws_the_1_2_4_8_writer_curve_of_both_paths_side_by_side() {
    let out_dir = tempfile::tempdir().unwrap();
    let plot = out_dir.path().join("curve.svg");
    let run = |json: bool| {
        let mut c = Command::new(bin());
        c.args(["bench", "--direct", "--only", "scaling", "--size", "16M"]);
        if json {
            c.arg("--json");
        } else {
            c.arg("--plot").arg(&plot);
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "bench failed: {stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (stdout, _) = run(true);
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let curve = j["scaling"].as_array().expect("the curve, side by side");
    let writers: Vec<u64> = curve
        .iter()
        .map(|p| p["writers"].as_u64().unwrap())
        .collect();
    assert_eq!(writers, [1, 2, 4, 8], "{j:#}");
    for p in curve {
        let (s, d) = (p["server"].as_f64().unwrap(), p["direct"].as_f64().unwrap());
        assert!(s > 0.0 && d > 0.0, "{p}");
        let ratio = p["direct_over_server"].as_f64().unwrap();
        assert!((ratio - d / s).abs() < 1e-9, "{p}");
    }
    // Each writer had a mount process of its own: 8 writers, 9 mounts on each side.
    for side in ["server", "direct"] {
        assert!(j[side]["system"].as_str().unwrap().contains("9 "), "{j:#}");
    }

    let (table, _) = run(false);
    let head = table
        .lines()
        .position(|l| l.starts_with("writers"))
        .unwrap_or_else(|| panic!("no side-by-side curve in:\n{table}"));
    let rows: Vec<&str> = table.lines().skip(head + 2).take(4).collect();
    for (row, k) in rows.iter().zip(["1", "2", "4", "8"]) {
        assert_eq!(row.split_whitespace().next(), Some(k), "{table}");
        assert!(row.contains('×'), "{table}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.contains("through the server") && svg.contains("direct"),
        "{svg}"
    );
    assert!(!out_dir.path().join("curve.direct.svg").exists());
}
