//! Test certificates: a self-signed server certificate for 127.0.0.1 and its key, made with
//! openssl.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use demo::Harness;

/// `(certificate, key)` files named after `name` in the harness's scratch directory.
pub fn certificate(h: &Harness, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        h.path(&format!("{name}.crt")),
        h.path(&format!("{name}.key")),
    );
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=rwxfs-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl could not make a certificate");
    (cert, key)
}
