//! Per-namespace access rules end to end. A real Docker engine talks to
//! regproxy over verified TLS and logs in as three users, each with its own
//! `DOCKER_CONFIG`: an admin (htpasswd, in `groups: admins`), a team-a member
//! from htpasswd (team-a through `groups:`) and a team-a member of a real
//! OpenLDAP directory (team-a through a groupOfNames, and in no `groups:`
//! entry). Pushes to the own namespace work; pushes to another team's
//! namespace and to the pull-only `shared` namespace fail with Docker's
//! `denied: requested access to the resource is denied`; a forbidden tag list
//! answers exactly like a missing repository. An edit of proxy.yaml that
//! lets the htpasswd user into team-b takes effect while the server runs and
//! without a new `docker login` (a broken edit first keeps the old rules).
//! `regproxy acl check` and `regproxy config check` are checked against the
//! same kind of file: decisions, rule lines, warnings, errors, exit codes.
//!
//! `registry.local` resolves to `::1` (not 127.0.0.1, which dockerd treats
//! as insecure and does not verify; see tests/e2e_tls.rs).
//!
//! Long file: one Docker session story per test, sharing the engine, users and rules fixture.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KIB: usize = 1024;
const NAME: &str = "registry.local";
/// The address `registry.local` resolves to on this machine (see above).
const NAME_ADDR: &str = "::1";
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for one docker CLI command.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// The server polls proxy.yaml every 2 s.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);
const DENIED: &str = "denied: requested access to the resource is denied";
const RELOADED: &str = "reloaded access rules";
const KEPT: &str = "keeping the previous access rules";

/// htpasswd users (cost 4 for speed).
const ADMIN: (&str, &str) = ("admin", "admin-Registry-pw-1");
const ALICE: (&str, &str) = ("alice", "alice-Registry-pw-1");
/// An LDAP user added to the directory's team-a group by this test; not in
/// htpasswd and not in `groups:`.
const ERIN: (&str, &str) = ("erin", "erin-Ldap-pw-1");

/// The rule appended while the server runs.
const ALICE_TEAM_B_RULE: &str = "    - subjects: [user:alice]
      repositories: [team-b]
      actions: [pull, push]
";

/// proxy.yaml for the tests: htpasswd and LDAP logins, team namespaces, a
/// deny rule, and a pull-only shared namespace. `access:` is last, so rules
/// can be appended.
fn proxy_yaml(ldap_url: &str) -> String {
    format!(
        "tls:
  dir: certs
  hosts: [{NAME}]
auth:
  htpasswd: htpasswd
  ldap:
    url: {ldap_url}
    bind_dn: {LDAP_SVC_DN}
    bind_password: {LDAP_SVC_PW}
    user_base: {LDAP_PEOPLE}
    group_base: {LDAP_GROUPS}
    timeout_secs: 2
groups:
  admins: [admin]
  team-a: [alice]
  team-b: [bob]
access:
  admins: [group:admins]
  default: deny
  rules:
    - subjects: [group:team-a]
      repositories: [team-a]
      actions: [pull, push]
    - effect: deny
      subjects: [user:mallory]
      repositories: [\"**\"]
      actions: [\"*\"]
    - subjects: [group:team-b]
      repositories: [team-b]
      actions: [pull, push]
    - subjects: [authenticated]
      repositories: [shared]
      actions: [pull]
"
    )
}

// ---------------------------------------------------------------------------
// Docker
// ---------------------------------------------------------------------------

#[test]
fn docker_users_push_only_where_the_rules_allow_and_a_reload_applies_without_a_new_login() {
    let started = Instant::now();
    let slapd = Slapd::start(SlapdOpts::default());
    add_ldap_team_a_member(&slapd, ERIN);
    let work = temp_dir("regproxy-e2e-acl-");
    let htpasswd = work.path().join("htpasswd");
    add_users(&htpasswd, &[ADMIN, ALICE]);
    let yaml = proxy_yaml(&slapd.url());
    let config = work.path().join("proxy.yaml");
    replace_file(&config, &yaml);
    let registry = Regproxy::start_with_args(&[
        "serve",
        "--config",
        path_str(&config),
        "--listen",
        "[::1]:0",
        "--data",
        path_str(&work.path().join("data")),
    ]);
    assert!(
        registry.url().starts_with("https://"),
        "not serving TLS: {}",
        registry.url()
    );
    let _hosts = HostsEntry::add(NAME_ADDR, NAME);
    let host = format!("{NAME}:{}", registry.port());
    let ca = work.path().join("certs/ca.crt");
    let _trusted = CertsDir::install(Path::new("/etc/docker/certs.d"), &host, &ca);
    let engine = Dockerd::start();
    let admin = User::new(&engine, work.path(), ADMIN);
    let alice = User::new(&engine, work.path(), ALICE);
    let erin = User::new(&engine, work.path(), ERIN);
    let image = |name: &str| format!("{host}/{name}");
    let import = |name: &str| {
        let tar = write_rootfs_tarball(
            &work
                .path()
                .join(format!("{}.tar", name.replace(['/', ':'], "-"))),
            64 * KIB,
        );
        engine.docker_ok(["import", path_str(&tar), &image(name)]);
    };
    eprintln!("setup: {:?}", started.elapsed());

    // The admin fills the pull-only namespace.
    admin.login(&host);
    import("shared/base:1");
    admin.push_ok(&image("shared/base:1"));
    engine.docker_ok(["rmi", &image("shared/base:1")]);

    // alice (htpasswd, team-a by `groups:`).
    alice.login(&host);
    alice.pull_ok(&image("shared/base:1"));
    import("team-a/app:1");
    alice.push_ok(&image("team-a/app:1"));
    engine.docker_ok(["tag", &image("team-a/app:1"), &image("team-b/app:1")]);
    alice.push_denied(&image("team-b/app:1"));
    engine.docker_ok(["tag", &image("shared/base:1"), &image("shared/base:alice")]);
    alice.push_denied(&image("shared/base:alice"));

    // erin (LDAP, team-a by the directory's groupOfNames).
    erin.login(&host);
    import("team-a/tool:1");
    erin.push_ok(&image("team-a/tool:1"));
    engine.docker_ok(["tag", &image("team-a/tool:1"), &image("team-b/tool:1")]);
    erin.push_denied(&image("team-b/tool:1"));
    engine.docker_ok(["rmi", &image("shared/base:1"), &image("shared/base:alice")]);
    erin.pull_ok(&image("shared/base:1"));
    engine.docker_ok(["tag", &image("shared/base:1"), &image("shared/base:erin")]);
    erin.push_denied(&image("shared/base:erin"));
    eprintln!("pushes and pulls: {:?}", started.elapsed());

    // A broken edit keeps the rules in force.
    let reloads = |log: &str| log.matches(RELOADED).count();
    let before = reloads(&registry.logs());
    replace_file(
        &config,
        &format!(
            "{yaml}{}",
            ALICE_TEAM_B_RULE.replace("pull, push", "pull, pushh")
        ),
    );
    wait_for(&registry, KEPT, 1);
    alice.push_denied(&image("team-b/app:1"));

    // The fixed edit: `acl check` agrees, the server reloads, and alice's
    // next push (no new login: Docker uses the identity token it stored)
    // gets a token granting team-b and succeeds.
    let with_rule = format!("{yaml}{ALICE_TEAM_B_RULE}");
    replace_file(&config, &with_rule);
    let check = acl_check(&config, &["alice", "team-b/app", "push"]);
    assert_eq!(check.status.code(), Some(0), "{}", output_text(&check));
    wait_for(&registry, RELOADED, before + 1);
    eprintln!("reloaded: {:?}", started.elapsed());
    alice.push_ok(&image("team-b/app:1"));
    // SIGHUP re-reads the file without a change.
    let pid = registry.pid() as libc::pid_t;
    // SAFETY: kill(2) on the pid of the server this test started and has
    // not reaped (its guard is alive); it touches no memory.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGHUP) },
        0,
        "SIGHUP to {pid}"
    );
    wait_for(&registry, RELOADED, before + 2);
    // The new rule names alice only.
    erin.push_denied(&image("team-b/tool:1"));
    engine.docker_ok(["rmi", &image("team-b/app:1")]);
    let pull = erin.docker(["pull", &image("team-b/app:1")]);
    assert_denied(&pull, "erin's pull of team-b/app");

    // Tag lists of forbidden repositories look like missing ones.
    let tags = |who: (&str, &str), repo: &str| {
        let url = format!("https://{host}/v2/{repo}/tags/list");
        let (status, body) = curl(&ca, &["-u", &format!("{}:{}", who.0, who.1), &url]);
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, body)
    };
    assert_eq!(
        tags(ALICE, "team-b/app"),
        (200, json!({"name": "team-b/app", "tags": ["1"]}))
    );
    let forbidden = tags(ERIN, "team-b/app");
    assert_eq!(forbidden.0, 404, "{forbidden:?}");
    assert_eq!(forbidden.1["errors"][0]["code"], "NAME_UNKNOWN");
    let missing = tags(ERIN, "team-b/nothing");
    assert_eq!(
        forbidden
            .1
            .to_string()
            .replace("team-b/app", "team-b/nothing"),
        missing.1.to_string(),
        "a forbidden repository answers unlike a missing one"
    );
    assert_eq!(forbidden.0, missing.0);
    eprintln!("total: {:?}", started.elapsed());
}

/// The documented delay for a directory change to reach Docker: the next
/// push refreshes its token, and a refresh re-reads the directory at most
/// `auth.cache_secs` (2 here) late; polled up to this bound.
const GROUP_CHANGE_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn an_ldap_user_removed_from_a_team_can_no_longer_push_there_without_logging_out() {
    let slapd = Slapd::start(SlapdOpts::default());
    add_ldap_team_a_member(&slapd, ERIN);
    let work = temp_dir("regproxy-e2e-group-");
    add_users(&work.path().join("htpasswd"), &[ADMIN]);
    let yaml = proxy_yaml(&slapd.url()).replace(
        "  htpasswd: htpasswd\n",
        "  htpasswd: htpasswd\n  cache_secs: 2\n  token:\n    expiry_secs: 60\n",
    );
    let config = work.path().join("proxy.yaml");
    replace_file(&config, &yaml);
    let registry = Regproxy::start_with_args(&[
        "serve",
        "--config",
        path_str(&config),
        "--listen",
        "[::1]:0",
        "--data",
        path_str(&work.path().join("data")),
    ]);
    let _hosts = HostsEntry::add(NAME_ADDR, NAME);
    let host = format!("{NAME}:{}", registry.port());
    let ca = work.path().join("certs/ca.crt");
    let _trusted = CertsDir::install(Path::new("/etc/docker/certs.d"), &host, &ca);
    let engine = Dockerd::start();
    let erin = User::new(&engine, work.path(), ERIN);
    let image = |tag: &str| format!("{host}/team-a/app:{tag}");
    for tag in ["1", "2"] {
        let tar = write_rootfs_tarball(&work.path().join(format!("app-{tag}.tar")), 64 * KIB);
        engine.docker_ok(["import", path_str(&tar), &image(tag)]);
    }

    erin.login(&host);
    let stored = fs::read_to_string(erin.config.join("config.json")).expect("config.json");
    erin.push_ok(&image("1"));

    // The team lead takes erin out of team-a; erin does nothing.
    slapd.set_member("team-a", ERIN.0, false);
    let started = Instant::now();
    let refused = loop {
        let out = erin.docker(["push", &image("2")]);
        if !out.status.success() {
            break output_text(&out);
        }
        assert!(
            started.elapsed() < GROUP_CHANGE_TIMEOUT,
            "erin still pushes to team-a {GROUP_CHANGE_TIMEOUT:?} after leaving the group:\n{}",
            output_text(&out)
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "a push after the group removal was refused after {:?}",
        started.elapsed()
    );
    assert!(
        refused.contains(DENIED) || refused.contains("unauthorized"),
        "erin's push failed, but not as denied or unauthorized:\n{refused}"
    );
    assert!(!refused.contains("digest: sha256:"), "{refused}");
    // Still no new login: Docker used the identity token it stored.
    assert_eq!(
        fs::read_to_string(erin.config.join("config.json")).expect("config.json"),
        stored
    );
    // And the push stays refused.
    erin.push_refused(&image("2"));
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

#[test]
fn acl_check_names_the_deciding_rule_and_its_line() {
    let work = temp_dir("regproxy-acl-check-");
    let config = work.path().join("proxy.yaml");
    let yaml = proxy_yaml("ldap://127.0.0.1:389");
    replace_file(&config, &yaml);
    let file = path_str(&config);
    let team_a = format!(
        "rule 1 at {file}:{}",
        line_of(&yaml, "- subjects: [group:team-a]")
    );
    let mallory = format!("rule 2 at {file}:{}", line_of(&yaml, "- effect: deny"));
    let shared = format!(
        "rule 4 at {file}:{}",
        line_of(&yaml, "- subjects: [authenticated]")
    );
    let default = "no rule matched: the default decides";
    let cases: &[(&[&str], bool, &str)] = &[
        (&["alice", "team-a/app", "push"], true, &team_a),
        (&["alice", "team-a/x/y", "pull"], true, &team_a),
        (&["alice", "team-ab/app", "pull"], false, default),
        (&["alice", "team-a/app", "delete"], false, default),
        (&["alice", "team-b/app", "push"], false, default),
        (&["alice", "shared/base", "pull"], true, &shared),
        (&["alice", "shared/base", "push"], false, default),
        // An LDAP group given with --group counts like one from `groups:`.
        (
            &["erin", "team-a/tool", "push", "--group", "team-a"],
            true,
            &team_a,
        ),
        (&["erin", "team-a/tool", "push"], false, default),
        // The first matching rule decides: deny before the shared pull...
        (&["mallory", "shared/base", "pull"], false, &mallory),
        // ...but team-a's allow comes before mallory's deny.
        (
            &["mallory", "team-a/app", "push", "--group", "team-a"],
            true,
            &team_a,
        ),
        (&["admin", "any/where/at/all", "delete"], true, "(admin)"),
        (&["anonymous", "shared/base", "pull"], false, default),
    ];
    for (args, allowed, why) in cases {
        let out = acl_check(&config, args);
        let text = output_text(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let verdict = if *allowed { "allow" } else { "deny" };
        let first = format!("{verdict}: {} {} {} (", args[0], args[2], args[1]);
        assert!(
            stdout.starts_with(&first),
            "acl check {args:?}: want {first:?}...:\n{text}"
        );
        assert!(
            stdout.contains(why),
            "acl check {args:?}: want {why:?}:\n{text}"
        );
        assert_eq!(
            out.status.code(),
            Some(if *allowed { 0 } else { 1 }),
            "{args:?}:\n{text}"
        );
    }
    let out = acl_check(&config, &["alice", "team-a/app", "push"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some(
            format!("allow: alice push team-a/app ({team_a}: allow pull,push on team-a)").as_str()
        )
    );
    assert!(stdout.contains("groups: team-a"), "{stdout}");

    // An appended rule decides with its own line.
    let with_rule = format!("{yaml}{ALICE_TEAM_B_RULE}");
    replace_file(&config, &with_rule);
    let out = acl_check(&config, &["alice", "team-b/app", "push"]);
    let want = format!(
        "rule 5 at {file}:{}",
        line_of(&with_rule, "- subjects: [user:alice]")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("allow: ") && stdout.contains(&want),
        "want {want:?}:\n{}",
        output_text(&out)
    );

    // The file is clean: no warnings.
    let out = config_check(&config);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "config check:\n{}",
        output_text(&out)
    );
}

#[test]
fn config_check_warns_about_shadowed_rules_and_rejects_rules_that_cannot_work() {
    let work = temp_dir("regproxy-acl-config-");
    let config = work.path().join("proxy.yaml");
    let file = path_str(&config);
    let head = "auth:\n  htpasswd: htpasswd\ngroups:\n  team-a: [alice]\naccess:\n  rules:\n";

    // Shadowed: a warning with both rules' lines; the file is still usable.
    let shadowed = format!(
        "{head}    - subjects: [authenticated]
      repositories: [team-a]
      actions: [pull, push]
    - effect: deny
      subjects: [group:team-a]
      repositories: [team-a/app]
      actions: [push]
"
    );
    replace_file(&config, &shadowed);
    let out = config_check(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "warning: {file}:{}: access: rule 2 is shadowed by rule 1 (line {}) and never applies",
        line_of(&shadowed, "- effect: deny"),
        line_of(&shadowed, "- subjects: [authenticated]")
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [want.as_str()],
        "{}",
        output_text(&out)
    );

    // Errors: every one reported, each with its line; exit 64.
    let broken = format!(
        "{head}    - subjects: [group:team-a]
      repositories: [team-a]
      actions: [pull, fly]
    - subjects: [authenticated]
      repositories: [Team-A]
      actions: [pull]
    - subjects: [authenticated]
      repositories: [\"a//b\"]
      actions: [pull]
    - subjects: [group:ghosts]
      repositories: [shared]
      actions: [pull]
"
    );
    replace_file(&config, &broken);
    let out = config_check(&config);
    let text = output_text(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{text}");
    assert!(stderr.starts_with("regproxy: error: "), "{text}");
    assert!(
        stderr.contains(&format!("{file} has 4 problem(s)")),
        "{text}"
    );
    assert!(stderr.contains("\nhint: "), "{text}");
    // Each problem points at the line of the key that has it.
    let key_line = |n: usize, key: &str| {
        let lines: Vec<&str> = broken.lines().collect();
        let start = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("- subjects:"))
            .map(|(i, _)| i)
            .nth(n - 1)
            .expect("rule n");
        let at = (start..lines.len())
            .find(|&i| {
                lines[i]
                    .trim_start()
                    .trim_start_matches("- ")
                    .starts_with(key)
            })
            .expect("key in rule n");
        at + 1
    };
    for (rule, key, what) in [
        (1, "actions:", "rule 1: unknown action \"fly\""),
        (
            2,
            "repositories:",
            "rule 2: repository pattern \"Team-A\" can never match",
        ),
        (
            3,
            "repositories:",
            "rule 3: repository pattern \"a//b\" can never match",
        ),
        (4, "subjects:", "group \"ghosts\" is never defined"),
    ] {
        let want = format!("{file}:{}: access: {what}", key_line(rule, key));
        assert!(stderr.contains(&want), "want {want:?}:\n{text}");
    }
    // A broken file decides nothing: acl check exits 64 too.
    let out = acl_check(&config, &["alice", "team-a/app", "pull"]);
    assert_eq!(out.status.code(), Some(64), "{}", output_text(&out));

    // With LDAP, groups may come from the directory: `ghosts` is fine.
    let ldap = broken
        .replace("pull, fly", "pull")
        .replace("Team-A", "team-a")
        .replace("a//b", "a/b")
        .replace(
            "auth:\n  htpasswd: htpasswd\n",
            &format!(
                "auth:\n  htpasswd: htpasswd\n  ldap:\n    url: ldap://127.0.0.1:389\n    \
                 user_dn_template: \"uid={{username}},{LDAP_PEOPLE}\"\n    group_base: {LDAP_GROUPS}\n"
            ),
        );
    replace_file(&config, &ldap);
    let out = config_check(&config);
    assert!(
        out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("ghosts"),
        "{}",
        output_text(&out)
    );
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A Docker user: the shared engine with a private `DOCKER_CONFIG`.
struct User<'a> {
    engine: &'a Dockerd,
    name: &'static str,
    password: &'static str,
    config: PathBuf,
}

impl<'a> User<'a> {
    fn new(
        engine: &'a Dockerd,
        dir: &Path,
        (name, password): (&'static str, &'static str),
    ) -> User<'a> {
        let config = dir.join(format!("docker-{name}"));
        fs::create_dir_all(&config).expect("create DOCKER_CONFIG");
        fs::write(config.join("config.json"), "{}\n").expect("write config.json");
        User {
            engine,
            name,
            password,
            config,
        }
    }

    fn command<const N: usize>(&self, args: [&str; N]) -> Command {
        let mut cmd = self.engine.command(args);
        cmd.env("DOCKER_CONFIG", &self.config);
        cmd
    }

    fn docker<const N: usize>(&self, args: [&str; N]) -> Output {
        run(&mut self.command(args), DOCKER_TIMEOUT)
    }

    fn login(&self, host: &str) {
        let mut cmd = self.command(["login", host, "-u", self.name, "--password-stdin"]);
        let out = run_with_input(
            &mut cmd,
            format!("{}\n", self.password).as_bytes(),
            DOCKER_TIMEOUT,
        );
        let text = output_text(&out);
        assert!(
            out.status.success() && text.contains("Login Succeeded"),
            "docker login as {}:\n{text}",
            self.name
        );
    }

    fn push_ok(&self, image: &str) {
        let out = self.docker(["push", image]);
        let text = output_text(&out);
        assert!(
            out.status.success() && text.contains("digest: sha256:"),
            "{} could not push {image}:\n{text}",
            self.name
        );
    }

    fn push_denied(&self, image: &str) {
        let out = self.docker(["push", image]);
        assert_denied(&out, &format!("{}'s push of {image}", self.name));
    }

    /// A push that fails as denied (rules) or unauthorized (the refresh
    /// was refused).
    fn push_refused(&self, image: &str) {
        let out = self.docker(["push", image]);
        let text = output_text(&out);
        assert!(
            !out.status.success(),
            "{}'s push of {image} succeeded:\n{text}",
            self.name
        );
        assert!(
            text.contains(DENIED) || text.contains("unauthorized"),
            "{}'s push of {image} failed, but not as denied or unauthorized:\n{text}",
            self.name
        );
    }

    fn pull_ok(&self, image: &str) {
        let out = self.docker(["pull", image]);
        let text = output_text(&out);
        assert!(
            out.status.success() && text.contains("Pull complete"),
            "{} could not pull {image}:\n{text}",
            self.name
        );
    }
}

/// Docker failed at once (a DENIED error is final: no retries) and printed
/// the registry's reason.
fn assert_denied(out: &Output, what: &str) {
    let text = output_text(out);
    assert!(!out.status.success(), "{what} succeeded:\n{text}");
    assert!(
        !text.contains("Retrying in"),
        "Docker retried {what}: it did not take the answer for a final DENIED:\n{text}"
    );
    assert!(
        text.contains(DENIED),
        "{what} failed, but not with {DENIED:?}:\n{text}"
    );
}

/// Adds an LDAP person and makes them a member of the groupOfNames team-a.
fn add_ldap_team_a_member(slapd: &Slapd, (uid, password): (&str, &str)) {
    slapd.add_ldif(&format!(
        "dn: uid={uid},{LDAP_PEOPLE}
objectClass: inetOrgPerson
uid: {uid}
cn: {uid}
sn: {uid}
userPassword: {password}

dn: cn=team-a,{LDAP_GROUPS}
changetype: modify
add: member
member: uid={uid},{LDAP_PEOPLE}
"
    ));
}

/// Waits (bounded) until the server's log holds `needle` at least `count`
/// times.
fn wait_for(registry: &Regproxy, needle: &str, count: usize) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    while registry.logs().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "the server did not log {needle:?} ({count}x) within {RELOAD_TIMEOUT:?}:\n{}",
            registry.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `path` atomically (temp file + rename), so the server's watcher
/// never reads half a file.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).expect("write config");
    fs::rename(&tmp, path).expect("rename config");
}

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
}

fn regproxy(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regproxy"));
    run(cmd.args(args), CMD_TIMEOUT)
}

/// `regproxy acl check ARGS --config CONFIG`.
fn acl_check(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["acl", "check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", path_str(config)]);
    regproxy(&all)
}

fn config_check(config: &Path) -> Output {
    regproxy(&["config", "check", "--config", path_str(config)])
}
