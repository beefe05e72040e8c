//! Test image contents made without internet: random data, a rootfs (or a
//! rootfs tarball) holding the static busybox, a multi-layer `docker build`
//! context, and minimal tar and gzip writers for OCI layers.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{require_tool, BUSYBOX};

/// `len` random bytes from /dev/urandom (incompressible, unique per call).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

pub fn write_random_file(path: &Path, len: usize) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent directory");
    }
    fs::write(path, random_bytes(len)).expect("write random file");
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Panics unless both files exist and hold the same bytes.
pub fn assert_same_file(expected: &Path, actual: &Path) {
    let a = fs::read(expected).unwrap_or_else(|e| panic!("read {}: {e}", expected.display()));
    let b = fs::read(actual).unwrap_or_else(|e| panic!("read {}: {e}", actual.display()));
    assert!(
        a == b,
        "{} ({} bytes, sha256 {}) differs from {} ({} bytes, sha256 {})",
        actual.display(),
        b.len(),
        sha256_hex(&b),
        expected.display(),
        a.len(),
        sha256_hex(&a)
    );
}

/// Writes a rootfs into `dir`: `bin/busybox` (static) and `n_files` random
/// files `data/file-<i>.bin` of `file_size` bytes. Returns the data files'
/// paths relative to `dir`.
pub fn make_rootfs(dir: &Path, n_files: usize, file_size: usize) -> Vec<PathBuf> {
    let busybox = require_tool(BUSYBOX, "busybox-static");
    fs::create_dir_all(dir.join("bin")).expect("create rootfs bin/");
    fs::copy(busybox, dir.join("bin/busybox")).expect("copy busybox into rootfs");
    (0..n_files)
        .map(|i| {
            let rel = PathBuf::from(format!("data/file-{i}.bin"));
            write_random_file(&dir.join(&rel), file_size);
            rel
        })
        .collect()
}

/// A rootfs tarball: the static busybox and one random file.
pub fn write_rootfs_tarball(path: &Path, data_size: usize) -> PathBuf {
    let busybox = fs::read(require_tool(BUSYBOX, "busybox-static")).expect("read busybox");
    let data = random_bytes(data_size);
    let tar = tar_archive(&[
        ("bin/", &[]),
        ("bin/busybox", &busybox),
        ("data/", &[]),
        ("data/random.bin", &data),
    ]);
    fs::write(path, tar).expect("write rootfs tarball");
    path.to_path_buf()
}

/// A `docker build` context whose image has `1 + n_data_layers` layers.
pub struct BuildContext {
    pub dir: PathBuf,
    /// (path inside the image, file in the context) for every copied file.
    pub files: Vec<(String, PathBuf)>,
    /// Number of filesystem layers the legacy builder makes.
    pub layers: usize,
}

/// Writes a context: `FROM scratch`, `COPY busybox /bin/busybox`, then one
/// `COPY` (= one layer with the legacy builder) per random data file.
pub fn make_build_context(dir: &Path, n_data_layers: usize, file_size: usize) -> BuildContext {
    let busybox = require_tool(BUSYBOX, "busybox-static");
    fs::create_dir_all(dir).expect("create build context");
    fs::copy(&busybox, dir.join("busybox")).expect("copy busybox into context");
    let mut dockerfile = String::from("FROM scratch\nCOPY busybox /bin/busybox\n");
    let mut files = vec![("/bin/busybox".to_string(), dir.join("busybox"))];
    for i in 0..n_data_layers {
        let name = format!("layer-{i}.bin");
        write_random_file(&dir.join(&name), file_size);
        dockerfile.push_str(&format!("COPY {name} /data/{name}\n"));
        files.push((format!("/data/{name}"), dir.join(&name)));
    }
    dockerfile.push_str("CMD [\"/bin/busybox\", \"sh\"]\n");
    fs::write(dir.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    BuildContext {
        dir: dir.to_path_buf(),
        files,
        layers: 1 + n_data_layers,
    }
}

/// An uncompressed ustar archive: directories (names ending in `/`) and
/// regular files, in the given order.
pub fn tar_archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        if name.ends_with('/') {
            out.extend_from_slice(&tar_header(name, 0, b'5', 0o755));
        } else {
            out.extend_from_slice(&tar_header(name, data.len() as u64, b'0', 0o644));
            out.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            out.resize(out.len() + pad, 0);
        }
    }
    out.resize(out.len() + 1024, 0); // two zero blocks end the archive
    out
}

fn tar_header(name: &str, size: u64, typeflag: u8, mode: u32) -> [u8; 512] {
    assert!(name.len() < 100, "tar name too long for ustar: {name}");
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], 0); // uid
    put_octal(&mut h[116..124], 0); // gid
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], 1_700_000_000); // mtime
    h[148..156].fill(b' '); // checksum is computed with spaces here
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    assert!(
        digits.len() == width,
        "value {value} too large for tar field"
    );
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
}

/// A valid gzip stream holding `data` in stored (uncompressed) deflate
/// blocks: deterministic, and random data would not compress anyway.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    // magic, CM=deflate, no flags, mtime 0, no extra flags, OS unknown
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]); // final empty block
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last)); // BFINAL, BTYPE=00 (stored), byte-aligned
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}
