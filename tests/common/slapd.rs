//! A real OpenLDAP `slapd` in a temp dir (about 0.4 s to start), and
//! servers that misbehave (silent, closed) for timeout tests.
//!
//! `Slapd::start` writes cn=config and the example directory as LDIF, loads
//! them with `slapadd`, and runs `slapd -d sync` (foreground, so the child
//! pid is the daemon's pid) on a probed free port, optionally with LDAPS and
//! StartTLS using a certificate from regproxy's own CA. The directory:
//!
//! ```text
//! dc=example,dc=org
//!   cn=svc                 service account (LDAP_SVC_DN / LDAP_SVC_PW)
//!   ou=people              alice bob carol dave o'brien a*b "smith, j" twin
//!     ou=staff             a second `twin` (the uid is ambiguous)
//!   ou=groups
//!     team-a  groupOfNames        member: alice, a*b
//!     team-b  groupOfUniqueNames  uniqueMember: alice, bob, "smith, j"
//!     ops     posixGroup          memberUid: alice, carol
//!     admins  posixGroup          memberUid: admin-bob (matched by an
//!                                 unescaped `(memberUid=a*b)`)
//! ```
//!
//! `dave` carries `memberOf: cn=legacy,ou=elsewhere,...` (no such group
//! entry: only the attribute names it), and the memberof overlay is on, so
//! groups added later with [`Slapd::add_ldif`] show up in `memberOf`.
//! Anonymous users can read nothing but `cn=Monitor` (the connection
//! counters). Dropping a `Slapd` stops the daemon by pid.
//!
//! Long file: the directory fixture is one unit (config and data LDIF, start and stop, misbehaving servers) shared by every LDAP test.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::process::{free_port, run, run_ok, Proc};
use super::{require_tool, tail_file, temp_dir};

pub const LDAP_BASE: &str = "dc=example,dc=org";
pub const LDAP_PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const LDAP_GROUPS: &str = "ou=groups,dc=example,dc=org";
pub const LDAP_ROOT_DN: &str = "cn=admin,dc=example,dc=org";
pub const LDAP_ROOT_PW: &str = "root-secret";
pub const LDAP_SVC_DN: &str = "cn=svc,dc=example,dc=org";
pub const LDAP_SVC_PW: &str = "svc-secret";
/// `(uid, password)` of the people directly under `ou=people`.
pub const LDAP_USERS: &[(&str, &str)] = &[
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carol", "carol-pw"),
    ("dave", "dave-pw"),
    ("o'brien", "obrien-pw"),
    ("a*b", "astar-pw"),
    ("smith, j", "smith-pw"),
    ("twin", "twin-pw"),
];

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// What to switch on in a test directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlapdOpts {
    /// LDAPS on a second port, StartTLS on the plain one.
    pub tls: bool,
    /// `olcAllows: bind_anon_dn`: a bind with a DN and an empty password
    /// succeeds (as anonymous), the trap an empty password must not fall in.
    pub allow_unauthenticated_bind: bool,
}

/// A running `slapd` with its own config and database in a temp dir.
pub struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
    proc: Option<Proc>,
}

impl Slapd {
    /// Builds the directory and starts the daemon; panics (with slapd's
    /// log) if it is not answering within 10 s.
    pub fn start(opts: SlapdOpts) -> Slapd {
        let slapadd = require_tool("slapadd", "slapd");
        require_tool("slapd", "slapd");
        require_tool("ldapsearch", "ldap-utils");
        let dir = temp_dir("regproxy-slapd-");
        let d = dir.path();
        std::fs::create_dir_all(d.join("slapd.d")).expect("mkdir slapd.d");
        std::fs::create_dir_all(d.join("db")).expect("mkdir db");
        let tls = opts.tls.then(|| {
            let mut names = regproxy::tls::certs::SubjectNames::default();
            names.add_host("127.0.0.1").expect("IP name");
            names.add_host("localhost").expect("DNS name");
            regproxy::tls::certs::issue(&d.join("tls"), &names, 30, false).expect("issue cert");
            d.join("tls")
        });
        std::fs::write(d.join("config.ldif"), config_ldif(d, tls.as_deref(), opts))
            .expect("write config.ldif");
        std::fs::write(d.join("data.ldif"), DATA_LDIF).expect("write data.ldif");
        for (n, file) in [("0", "config.ldif"), ("1", "data.ldif")] {
            let mut cmd = Command::new(&slapadd);
            cmd.args(["-n", n, "-F"]).arg(d.join("slapd.d"));
            run_ok(cmd.arg("-l").arg(d.join(file)), TOOL_TIMEOUT);
        }
        let mut slapd = Slapd {
            dir,
            port: 0,
            tls_port: None,
            proc: None,
        };
        // A probed port can be taken before slapd binds it: try again.
        for attempt in 1..=5 {
            slapd.port = free_port();
            slapd.tls_port = opts.tls.then(free_port);
            match slapd.launch() {
                Ok(()) => return slapd,
                Err(log) if attempt < 5 && log.contains("Address already in use") => continue,
                Err(log) => panic!("slapd did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    /// `ldap://127.0.0.1:PORT` (plain; StartTLS too when started with TLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`; panics unless started with `tls`.
    pub fn ldaps_url(&self) -> String {
        let port = self.tls_port.expect("slapd started without tls");
        format!("ldaps://127.0.0.1:{port}")
    }

    /// The CA that signed slapd's certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("tls").join("ca.crt")
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Stops the daemon (SIGTERM, SIGKILL after 5 s) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.terminate(STOP_GRACE);
        }
    }

    /// Stops and starts again on the same ports, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.launch() {
            panic!("slapd did not restart:\n{log}");
        }
    }

    /// `ldapadd` as the root DN; the memberof overlay sees these entries.
    pub fn add_ldif(&self, ldif: &str) {
        let path = self.dir.path().join("add.ldif");
        std::fs::write(&path, ldif).expect("write add.ldif");
        let mut cmd = Command::new(require_tool("ldapadd", "ldap-utils"));
        cmd.args([
            "-x",
            "-H",
            &self.url(),
            "-D",
            LDAP_ROOT_DN,
            "-w",
            LDAP_ROOT_PW,
            "-f",
        ]);
        run_ok(cmd.arg(&path), TOOL_TIMEOUT);
    }

    /// `ldapmodify` as the root DN: LDIF with `changetype: modify` (add or
    /// delete a group member, replace a password).
    pub fn modify_ldif(&self, ldif: &str) {
        let path = self.dir.path().join("modify.ldif");
        std::fs::write(&path, ldif).expect("write modify.ldif");
        let mut cmd = Command::new(require_tool("ldapmodify", "ldap-utils"));
        cmd.args([
            "-x",
            "-H",
            &self.url(),
            "-D",
            LDAP_ROOT_DN,
            "-w",
            LDAP_ROOT_PW,
            "-f",
        ]);
        run_ok(cmd.arg(&path), TOOL_TIMEOUT);
    }

    /// Makes the person `uid` a member of the groupOfNames `group`, or
    /// removes them from it.
    pub fn set_member(&self, group: &str, uid: &str, member: bool) {
        let op = if member { "add" } else { "delete" };
        self.modify_ldif(&format!(
            "dn: cn={group},{LDAP_GROUPS}\nchangetype: modify\n{op}: member\n\
             member: uid={uid},{LDAP_PEOPLE}\n"
        ));
    }

    /// Replaces the password of the person `uid`.
    pub fn set_password(&self, uid: &str, password: &str) {
        self.modify_ldif(&format!(
            "dn: uid={uid},{LDAP_PEOPLE}\nchangetype: modify\nreplace: userPassword\n\
             userPassword: {password}\n"
        ));
    }

    /// Connections slapd has accepted since it started (cn=Monitor),
    /// counting the one this query makes.
    pub fn total_connections(&self) -> u64 {
        let mut cmd = Command::new(require_tool("ldapsearch", "ldap-utils"));
        cmd.args(["-x", "-LLL", "-H", &self.url(), "-s", "base", "-b"]);
        cmd.args(["cn=Total,cn=Connections,cn=Monitor", "monitorCounter"]);
        let out = run_ok(&mut cmd, TOOL_TIMEOUT);
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("monitorCounter: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no monitorCounter in:\n{text}"))
    }

    /// Whether a simple bind as `dn` with `password` succeeds, per
    /// `ldapwhoami` (an independent client).
    pub fn whoami(&self, dn: &str, password: &str) -> Option<String> {
        let mut cmd = Command::new(require_tool("ldapwhoami", "ldap-utils"));
        cmd.args(["-x", "-H", &self.url(), "-D", dn, "-w", password]);
        let out = run(&mut cmd, TOOL_TIMEOUT);
        let who = String::from_utf8_lossy(&out.stdout).trim().to_string();
        out.status.success().then_some(who)
    }

    pub fn log_tail(&self) -> String {
        tail_file(&self.dir.path().join("slapd.log"), 40)
    }

    /// Runs slapd in the foreground and waits until every port accepts
    /// connections. `Err` carries the log if it exited or never answered.
    fn launch(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let log = std::fs::File::create(d.join("slapd.log")).expect("create slapd.log");
        let mut cmd = Command::new(require_tool("slapd", "slapd"));
        // `-d sync`: foreground, and errors (but no per-request noise) on stderr.
        cmd.args(["-d", "sync", "-F"])
            .arg(d.join("slapd.d"))
            .args(["-h", &urls]);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let mut proc = Proc::spawn("slapd", &mut cmd);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = proc.try_exit_status() {
                return Err(format!("slapd exited ({status}):\n{}", self.log_tail()));
            }
            // The pid file names the process we started (so it is the daemon,
            // not a forked parent) once its ports are bound.
            let pid_file = std::fs::read_to_string(d.join("slapd.pid")).unwrap_or_default();
            if pid_file.trim() == proc.pid().to_string() && ports.iter().all(|p| accepts(*p)) {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() > deadline {
                proc.kill9();
                return Err(format!(
                    "slapd not answering after {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A TCP server on 127.0.0.1 that accepts connections and never answers:
/// a directory that hangs. Stops accepting when dropped.
pub struct SilentServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `ldap://127.0.0.1:PORT` where nothing listens (connections are refused).
pub fn closed_ldap_url() -> String {
    format!("ldap://127.0.0.1:{}", free_port())
}

fn config_ldif(d: &Path, tls: Option<&Path>, opts: SlapdOpts) -> String {
    let mut global = format!("olcPidFile: {}\n", d.join("slapd.pid").display());
    if let Some(t) = tls {
        global += &format!(
            "olcTLSCertificateFile: {}\nolcTLSCertificateKeyFile: {}\n",
            t.join("server.crt").display(),
            t.join("server.key").display()
        );
    }
    if opts.allow_unauthenticated_bind {
        global += "olcAllows: bind_anon_dn\n";
    }
    let schema: String = ["core", "cosine", "inetorgperson", "nis"]
        .iter()
        .map(|s| format!("include: file:///etc/ldap/schema/{s}.ldif\n\n"))
        .collect();
    format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n{global}
dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}
olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\nolcModuleLoad: memberof

dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema

{schema}dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig
objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {{0}}config
olcRootDN: cn=admin,cn=config

dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig
olcDatabase: {{1}}mdb\nolcSuffix: {LDAP_BASE}\nolcRootDN: {LDAP_ROOT_DN}\nolcRootPW: {LDAP_ROOT_PW}
olcDbDirectory: {db}\nolcDbMaxSize: 10485760
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config\nobjectClass: olcOverlayConfig
objectClass: olcMemberOf\nolcOverlay: {{0}}memberof

dn: olcDatabase={{2}}monitor,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {{2}}monitor
olcAccess: {{0}}to * by * read
",
        db = d.join("db").display()
    )
}

const DATA_LDIF: &str = r"dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: example
dc: example

dn: cn=svc,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: svc
userPassword: svc-secret

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=staff,ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: staff

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: alice-pw

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: bob-pw

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carol-pw

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
userPassword: dave-pw
memberOf: cn=legacy,ou=elsewhere,dc=example,dc=org

dn: uid=o'brien,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: o'brien
cn: O'Brien
sn: O
userPassword: obrien-pw

dn: uid=a*b,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: a*b
cn: A Star B
sn: S
userPassword: astar-pw

dn: uid=smith\2C j,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: smith, j
cn: J Smith
sn: Smith
userPassword: smith-pw

dn: uid=twin,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: T
userPassword: twin-pw

dn: uid=twin,ou=staff,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin
cn: Twin Two
sn: T
userPassword: twin-pw

dn: cn=team-a,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: team-a
member: uid=alice,ou=people,dc=example,dc=org
member: uid=a*b,ou=people,dc=example,dc=org

dn: cn=team-b,ou=groups,dc=example,dc=org
objectClass: groupOfUniqueNames
cn: team-b
uniqueMember: uid=alice,ou=people,dc=example,dc=org
uniqueMember: uid=bob,ou=people,dc=example,dc=org
uniqueMember: uid=smith\2C j,ou=people,dc=example,dc=org

dn: cn=ops,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: ops
gidNumber: 5000
memberUid: alice
memberUid: carol

dn: cn=admins,ou=groups,dc=example,dc=org
objectClass: posixGroup
cn: admins
gidNumber: 5001
memberUid: admin-bob
";
