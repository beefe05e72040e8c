//! The web UI (`/ui/`), tested as people use it: in headless Chromium
//! through WebDriver ([`browser`]), and with an HTTP client for what a
//! browser hides ([`security`]: leaks, CSRF, cookies, sessions, headers),
//! as an attacker would ([`hostile`]) and under odd or concurrent use
//! ([`robust`]).
//!
//! Layout: `fixture` (a server with real pushed images, logins and team
//! rules; a form-filling client) and `webdriver` (chromedriver + Chromium,
//! stopped by pid) below the two test modules.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod fixture;
mod hostile;
mod ldap;
mod robust;
mod security;
mod webdriver;
